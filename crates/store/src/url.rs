//! Store URLs: a file path or `sqlite://` URL for SQLite, `postgres://` for PostgreSQL.

use cutover_core::mask_url;

use crate::StoreError;

/// Which database holds the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file (the embedded default).
    Sqlite,
    /// A PostgreSQL database (several operators or workers).
    Postgres,
}

/// A parsed store URL.
#[derive(Debug, Clone)]
pub struct DbUrl {
    /// Backend.
    pub backend: Backend,
    /// What the driver connects to.
    pub connect: String,
    original: String,
}

impl DbUrl {
    /// Accepts `./cutover.db`, `sqlite://path`, `sqlite:path`, `postgres://…`, `postgresql://…`.
    pub fn parse(s: &str) -> Result<DbUrl, StoreError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(StoreError::BadUrl(s.into()));
        }
        let (backend, connect) = if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            (Backend::Postgres, s.to_owned())
        } else if let Some(path) = s.strip_prefix("sqlite://").or_else(|| s.strip_prefix("sqlite:")) {
            let sep = if path.contains('?') { '&' } else { '?' };
            (Backend::Sqlite, format!("sqlite://{path}{sep}mode=rwc"))
        } else if s.contains("://") {
            return Err(StoreError::BadUrl(mask_url(s)));
        } else {
            (Backend::Sqlite, format!("sqlite://{s}?mode=rwc"))
        };
        Ok(DbUrl { backend, connect, original: s.to_owned() })
    }

    /// The file of a SQLite store.
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        if self.backend != Backend::Sqlite {
            return None;
        }
        let s = self
            .original
            .strip_prefix("sqlite://")
            .or_else(|| self.original.strip_prefix("sqlite:"))
            .unwrap_or(&self.original);
        Some(std::path::PathBuf::from(s.split('?').next().unwrap_or(s)))
    }

    /// The URL as given, password masked.
    pub fn masked(&self) -> String {
        mask_url(&self.original)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = DbUrl::parse("./cutover.db").unwrap();
        assert_eq!((u.backend, u.connect.as_str()), (Backend::Sqlite, "sqlite://./cutover.db?mode=rwc"));
        let u = DbUrl::parse("sqlite:///tmp/x.db").unwrap();
        assert_eq!(u.connect, "sqlite:///tmp/x.db?mode=rwc");
        let u = DbUrl::parse("postgres://a:pw@h/db").unwrap();
        assert_eq!(u.backend, Backend::Postgres);
        assert_eq!(u.masked(), "postgres://a:***@h/db");
        assert!(matches!(DbUrl::parse("mysql://x:pw@h/db"), Err(StoreError::BadUrl(m)) if !m.contains("pw")));
        assert!(DbUrl::parse("").is_err());
    }
}
