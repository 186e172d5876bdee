//! Mapping packs as far as the lifecycle needs them: the project template of each pack.
//!
//! The packs shipped with cutover are embedded in the binary; `--packs DIR` (or
//! `CUTOVER_PACKS`) reads `DIR/<name>/project.toml` instead, so vendors can add packs
//! without rebuilding.

use std::path::{Path, PathBuf};

use cutover_core::template::ProjectTemplate;

use crate::AppError;

const BUILTIN: &[(&str, &str)] = &[("omikai", include_str!("../../../packs/omikai/project.toml"))];

/// Where packs come from.
#[derive(Debug, Clone)]
pub enum Packs {
    /// The packs compiled into cutover.
    Builtin,
    /// A folder with one sub-folder per pack.
    Dir(PathBuf),
}

impl Packs {
    /// The project template of a pack.
    pub fn template(&self, name: &str) -> Result<ProjectTemplate, AppError> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(AppError::Pack { file: name.into(), message: "pack names use a-z, 0-9, '-' and '_'".into() });
        }
        let (file, text) = match self {
            Packs::Builtin => {
                let text = BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, t)| (*t).to_owned()).ok_or_else(|| {
                    let known: Vec<_> = BUILTIN.iter().map(|(n, _)| *n).collect();
                    AppError::Pack {
                        file: name.into(),
                        message: format!("no such pack; built-in packs: {}", known.join(", ")),
                    }
                })?;
                (format!("packs/{name}/project.toml (built in)"), text)
            }
            Packs::Dir(dir) => {
                let path = dir.join(name).join("project.toml");
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| AppError::Pack { file: path.display().to_string(), message: e.to_string() })?;
                (path.display().to_string(), text)
            }
        };
        parse_template(&file, &text, name)
    }

    /// The folder packs are read from, if not built in.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Packs::Builtin => None,
            Packs::Dir(d) => Some(d),
        }
    }
}

fn parse_template(file: &str, text: &str, name: &str) -> Result<ProjectTemplate, AppError> {
    let t: ProjectTemplate = toml::from_str(text).map_err(|e| {
        let at = e.span().map(|s| line_col(text, s.start)).map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default();
        AppError::Pack { file: format!("{file}{at}"), message: e.message().to_owned() }
    })?;
    if t.pack != name {
        return Err(AppError::Pack {
            file: file.into(),
            message: format!("declares pack = \"{}\" but is the pack '{name}'", t.pack),
        });
    }
    Ok(t)
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_omikai_template_loads() {
        let t = Packs::Builtin.template("omikai").unwrap();
        assert_eq!(t.target_product, "Omikai 2");
        assert!(t.entities.iter().any(|e| e.name == "layout" && e.not_migrated.is_some()));
        assert_eq!(t.checklist.iter().filter(|c| c.kind == cutover_core::PartyKind::Vendor).count(), 6);
    }

    #[test]
    fn unknown_pack_and_bad_toml_are_explained() {
        let e = Packs::Builtin.template("nope").unwrap_err().to_string();
        assert!(e.contains("built-in packs: omikai"), "{e}");
        let e = parse_template("p.toml", "pack = \"x\"\nsource_product = 3\n", "x").unwrap_err().to_string();
        assert!(e.contains("p.toml:2:18"), "{e}");
        let e = parse_template("p.toml", "pack = \"x\"\nbogus = 1\n", "x").unwrap_err().to_string();
        assert!(e.contains("p.toml:2:1") && e.contains("bogus"), "{e}");
    }
}
