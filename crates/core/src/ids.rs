//! Validated value types: every identifier and quantity is checked once, at the edge.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;

macro_rules! string_newtype {
    ($(#[$m:meta])* $name:ident, $field:literal, $check:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps the value.
            pub fn parse(s: impl AsRef<str>) -> Result<Self, DomainError> {
                let s = s.as_ref().trim();
                let check: fn(&str) -> Result<(), String> = $check;
                check(s).map_err(|reason| DomainError::Invalid { field: $field, reason })?;
                Ok(Self(s.to_owned()))
            }
            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = DomainError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

fn non_empty(s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if s.chars().any(|c| c.is_control()) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

string_newtype!(
    /// The operator-chosen slug of a migration project: lower-case letters, digits and dashes.
    ProjectKey,
    "project key",
    |s| {
        if s.is_empty() || s.len() > 64 {
            return Err("must be 1 to 64 characters".into());
        }
        if !s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return Err(format!("'{s}' may only contain a-z, 0-9 and '-'"));
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err(format!("'{s}' must not start or end with '-'"));
        }
        Ok(())
    }
);

string_newtype!(
    /// A user's e-mail address, the user's login name.
    Email,
    "email",
    |s| {
        let Some((local, domain)) = s.split_once('@') else {
            return Err(format!("'{s}' has no '@'"));
        };
        if local.is_empty() || domain.is_empty() || !domain.contains('.') || domain.contains('@') {
            return Err(format!("'{s}' is not an e-mail address"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) || s.len() > 254 {
            return Err(format!("'{s}' is not an e-mail address"));
        }
        Ok(())
    }
);

string_newtype!(
    /// The name of a customer organisation.
    OrgName,
    "organisation",
    |s| non_empty(s, 200)
);

string_newtype!(
    /// A free-text label that must be present: names, titles, reasons.
    Text,
    "text",
    |s| non_empty(s, 2000)
);

/// Hours with two decimals, stored as hundredths so sums never drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hours(u32);

impl Hours {
    /// The largest number of hours one entry or estimate may carry.
    pub const MAX_CENTI: u32 = 100_000 * 100;

    /// Parses "1", "1.5", "0.25"; refuses negative, zero, over-precise or absurd values.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let bad = |reason: String| DomainError::Invalid { field: "hours", reason };
        let s = s.trim();
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if int.is_empty() && frac.is_empty() {
            return Err(bad("must be a number such as 1.5".into()));
        }
        if !int.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad(format!("'{s}' is not a positive number such as 1.5")));
        }
        if frac.len() > 2 {
            return Err(bad(format!("'{s}' has more than two decimals")));
        }
        let int: u64 = if int.is_empty() { 0 } else { int.parse().map_err(|_| bad(format!("'{s}' is too large")))? };
        let frac_c: u64 = match frac.len() {
            0 => 0,
            1 => u64::from(frac.as_bytes()[0] - b'0') * 10,
            _ => frac.parse().unwrap_or(0),
        };
        let centi = int.saturating_mul(100).saturating_add(frac_c);
        if centi == 0 {
            return Err(bad("must be more than zero".into()));
        }
        if centi > u64::from(Self::MAX_CENTI) {
            return Err(bad(format!("'{s}' is more than {} hours", Self::MAX_CENTI / 100)));
        }
        Ok(Self(centi as u32))
    }
    /// Builds from hundredths of an hour (used for sums, never for user input).
    pub const fn from_centi(c: u32) -> Self {
        Self(c)
    }
    /// Hundredths of an hour.
    pub const fn centi(self) -> u32 {
        self.0
    }
    /// As a float, for JSON and charts only.
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 100.0
    }
    /// Sum, saturating.
    pub fn plus(self, o: Hours) -> Hours {
        Hours(self.0.saturating_add(o.0))
    }
    /// Difference, floored at zero.
    pub fn minus(self, o: Hours) -> Hours {
        Hours(self.0.saturating_sub(o.0))
    }
}

impl fmt::Display for Hours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (i, c) = (self.0 / 100, self.0 % 100);
        match c {
            0 => write!(f, "{i}"),
            c if c % 10 == 0 => write!(f, "{i}.{}", c / 10),
            c => write!(f, "{i}.{c:02}"),
        }
    }
}

impl Serialize for Hours {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_f64())
    }
}

impl<'de> Deserialize<'de> for Hours {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if !(0.0..=f64::from(Self::MAX_CENTI) / 100.0).contains(&v) {
            return Err(serde::de::Error::custom(format!("hours out of range: {v}")));
        }
        Ok(Hours((v * 100.0).round() as u32))
    }
}

/// Hides the password of a connection URL (`postgres://u:secret@h/db` → `postgres://u:***@h/db`).
pub fn mask_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_owned();
    };
    format!("{}{}:***{}", &url[..scheme_end + 3], &userinfo[..colon], &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_keys() {
        assert!(ProjectKey::parse("acme-2026").is_ok());
        for bad in ["", "Acme", "a b", "-a", "a-", "ä", &"x".repeat(65)] {
            assert!(ProjectKey::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn emails() {
        assert!(Email::parse("ola@acme.no").is_ok());
        for bad in ["", "ola", "ola@", "@acme.no", "ola@acme", "o la@acme.no", "a@b@c.no"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn hours_parse_and_print() {
        assert_eq!(Hours::parse("1.5").unwrap().centi(), 150);
        assert_eq!(Hours::parse("0.25").unwrap().centi(), 25);
        assert_eq!(Hours::parse("2").unwrap().to_string(), "2");
        assert_eq!(Hours::parse("2.50").unwrap().to_string(), "2.5");
        assert_eq!(Hours::parse(".75").unwrap().to_string(), "0.75");
        for bad in ["", "0", "-1", "1.234", "abc", "1e3", "100001", "."] {
            assert!(Hours::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn hours_json_roundtrip() {
        let h = Hours::parse("3.25").unwrap();
        let j = serde_json::to_string(&h).unwrap();
        assert_eq!(j, "3.25");
        assert_eq!(serde_json::from_str::<Hours>(&j).unwrap(), h);
    }

    #[test]
    fn masks_passwords() {
        assert_eq!(
            mask_url("postgres://bob:s3cret@db.example:5432/v1?x=1"),
            "postgres://bob:***@db.example:5432/v1?x=1"
        );
        assert_eq!(mask_url("postgres://bob@h/db"), "postgres://bob@h/db");
        assert_eq!(mask_url("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
        assert_eq!(mask_url("/tmp/v1.db"), "/tmp/v1.db");
    }
}
