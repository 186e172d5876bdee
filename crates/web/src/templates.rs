//! The portal's HTML templates (minijinja, compiled into the binary) and the one place that
//! turns a document's Markdown into HTML. Every value is escaped unless a template says `|safe`,
//! and `|safe` is only used on HTML this module produced.

use std::sync::LazyLock;

use axum::response::Html;
use minijinja::{AutoEscape, Environment};
use serde::Serialize;

use crate::error::WebError;

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../templates/", $name)))),*]
    };
}

const TEMPLATES: &[(&str, &str)] = templates!(
    "base.html",
    "project_base.html",
    "error.html",
    "login.html",
    "dashboard.html",
    "dashboard_row.html",
    "project.html",
    "plan.html",
    "contracts.html",
    "contract.html",
    "runs.html",
    "run.html",
    "verifications.html",
    "verification.html",
    "checklist.html",
    "preview.html",
    "recovery.html",
    "retainer.html",
    "audit.html",
);

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // Every template is HTML: escape everything, whatever the file name.
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    for (name, source) in TEMPLATES {
        if let Err(e) = env.add_template(name, source) {
            // A broken template is a build defect; the test suite renders every page.
            tracing::error!(template = name, error = %e, "template does not compile");
        }
    }
    env
});

/// Renders a template with a context.
pub fn render(name: &str, ctx: &impl Serialize) -> Result<Html<String>, WebError> {
    let t = ENV.get_template(name).map_err(|e| {
        tracing::error!(template = name, error = %e, "missing template");
        WebError::internal("template")
    })?;
    t.render(minijinja::value::Serde(ctx)).map(Html).map_err(|e| {
        tracing::error!(template = name, error = %e, "template failed");
        WebError::internal("template")
    })
}

/// A document's Markdown as HTML. Raw HTML in the Markdown (a customer's name, say) is shown as
/// text, never passed through.
pub fn markdown(md: &str) -> String {
    use pulldown_cmark::{Event, Parser};
    let events = Parser::new(md).map(|e| match e {
        Event::Html(h) | Event::InlineHtml(h) => Event::Text(h),
        other => other,
    });
    let mut out = String::with_capacity(md.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut out, events);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn every_template_compiles() {
        for (name, _) in super::TEMPLATES {
            super::ENV.get_template(name).unwrap();
        }
    }

    #[test]
    fn markdown_keeps_raw_html_as_text() {
        let html = super::markdown("# Contract\n\nCustomer: <script>alert(1)</script> & Co\n");
        assert!(html.contains("<h1>Contract</h1>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
    }

    #[test]
    fn values_are_escaped() {
        let ctx = serde_json::json!({"status": 400, "code": "x", "message": "<img src=x onerror=alert(1)>"});
        let html = super::render("error.html", &ctx).unwrap().0;
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"), "{html}");
        assert!(!html.contains("<img"), "{html}");
    }
}
