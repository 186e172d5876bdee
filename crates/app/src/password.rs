//! Password hashing with Argon2id; clear passwords are never stored or logged.

use argon2::Argon2;
use password_hash::rand_core::OsRng;
use password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::AppError;

/// A valid hash of a random password, checked against when the user does not exist.
pub(crate) const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$4rJ2DA7Nlp2e1a8qa2YhCJ9uFx1/Swk0m5v8dEbxAYo";

/// Minimum password length.
pub const MIN_LEN: usize = 10;

/// Hashes a password (Argon2id, random salt) into a PHC string.
pub fn hash_password(clear: &str) -> Result<String, AppError> {
    if clear.chars().count() < MIN_LEN {
        return Err(AppError::Password(format!("must be at least {MIN_LEN} characters")));
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(clear.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::Password(e.to_string()))
}

/// Checks a password against a stored PHC string.
pub fn verify_password(clear: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(clear.as_bytes(), &h).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(!h.contains("correct horse"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong horse battery", &h));
        assert!(!verify_password("x", "not a hash"));
        assert!(hash_password("short").is_err());
        // The dummy must parse, or logins of unknown users would answer faster.
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
