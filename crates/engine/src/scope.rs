//! The scope document, "what is migrated from Omikai 1 to Omikai 2", generated from the pack
//! and the project's scope, so that it is always true.

use std::collections::BTreeMap;
use std::fmt::Write;

use time::Date;

use crate::pack::{ENGINE_REASONS, Pack};

/// Renders the scope document as Markdown.
pub fn scope_document(pack: &Pack, included: &[String], cutoff: Date, options: &BTreeMap<String, String>) -> String {
    let t = &pack.template;
    let mut s = String::new();
    let mut reasons: BTreeMap<String, String> = BTreeMap::new();
    let _ = writeln!(s, "# What is migrated from {} to {}\n", t.source_product, t.target_product);
    let _ = writeln!(
        s,
        "Every record of {} ends in exactly one bucket: migrated, migrated with a warning, excluded (by a scope rule) or rejected (bad data). \
Every record that is not simply migrated is listed in the run report with its reason and its original values.\n",
        t.source_product
    );
    let _ = writeln!(
        s,
        "- History cut-off: orders finished or cancelled before **{cutoff}** stay in the {} archive.",
        t.source_product
    );
    for o in &t.options {
        let v = options.get(&o.name).unwrap_or(&o.default);
        let _ = writeln!(s, "- Option `{}` = `{v}`: {}.", o.name, o.description);
    }
    let _ = writeln!(s, "\n## Migrated\n");
    for se in t.entities.iter().filter(|e| e.not_migrated.is_none() && included.contains(&e.name)) {
        let _ = writeln!(s, "### {}\n", se.title);
        for e in pack.entities.iter().filter(|e| e.scope == se.name) {
            let Some(tg) = &e.target else { continue };
            let _ = writeln!(s, "- `{}` → `{}`: {}", e.source, tg.table, e.description);
            if let Some(m) = &e.merge {
                let _ = writeln!(s, "  - merged: {} (`{}`)", m.message, m.reason);
                reasons.entry(m.reason.clone()).or_insert_with(|| m.message.clone());
            }
            for r in &e.exclude {
                let _ = writeln!(s, "  - excluded when `{}`: {} (`{}`)", r.source, r.message, r.reason);
                reasons.entry(r.reason.clone()).or_insert_with(|| r.message.clone());
            }
            for r in &e.reject {
                let _ = writeln!(s, "  - rejected when `{}`: {} (`{}`)", r.source, r.message, r.reason);
                reasons.entry(r.reason.clone()).or_insert_with(|| r.message.clone());
            }
            for r in &e.warn {
                let _ = writeln!(s, "  - migrated with a warning when `{}`: {} (`{}`)", r.source, r.message, r.reason);
                reasons.entry(r.reason.clone()).or_insert_with(|| r.message.clone());
            }
            let warned: Vec<&str> = tg.fields.iter().filter(|f| f.warn_on_error).map(|f| f.column.as_str()).collect();
            if !warned.is_empty() {
                let _ = writeln!(
                    s,
                    "  - values that cannot be read are left empty and reported as warnings: {}",
                    warned.join(", ")
                );
            }
            if e.depends_on.iter().any(|_| true) {
                let parents: Vec<&str> = e.depends_on.iter().map(|&d| pack.entities[d].name.as_str()).collect();
                let _ = writeln!(
                    s,
                    "  - follows its parents ({}): excluded with an excluded parent, rejected as `orphan` when the parent is missing or rejected",
                    parents.join(", ")
                );
            }
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "## Not migrated\n");
    for se in &t.entities {
        if let Some(why) = &se.not_migrated {
            let _ = writeln!(s, "- **{}**: {why} (`not_supported_in_v2`).", se.title);
        } else if !included.contains(&se.name) {
            let _ = writeln!(s, "- **{}**: excluded from the scope by agreement (`excluded_by_scope`).", se.title);
        }
    }
    let _ = writeln!(s, "\n## Reason codes\n");
    let _ = writeln!(s, "| code | meaning |");
    let _ = writeln!(s, "|---|---|");
    for (code, why) in ENGINE_REASONS {
        reasons.entry((*code).to_owned()).or_insert_with(|| (*why).to_owned());
    }
    for m in &pack.maps {
        reasons
            .entry(m.unknown_reason.clone())
            .or_insert_with(|| format!("a value is not one {} knows ({})", t.target_product, m.name));
    }
    reasons.entry("invalid_date".into()).or_insert_with(|| "a date that does not exist or cannot be read".into());
    reasons.entry("invalid_email".into()).or_insert_with(|| "an e-mail address that is not valid".into());
    for (code, why) in &reasons {
        let _ = writeln!(s, "| `{code}` | {} |", why.replace('|', "\\|"));
    }
    s
}
