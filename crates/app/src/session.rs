//! Login sessions for the portal: random tokens, stored only as their SHA-256.

use cutover_core::{Email, User};
use password_hash::rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;

use crate::{App, Result};

/// How long a session lasts.
pub const SESSION_SECONDS: i64 = 8 * 3600;

fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// 32 random bytes from the OS, as 64 hex digits.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl App {
    /// Checks the password and opens a session; `None` for a wrong e-mail or password alike.
    pub async fn open_session(&self, email: &str, password: &str) -> Result<Option<(String, User)>> {
        let Some(user) = self.login(email, password).await? else { return Ok(None) };
        let token = random_token();
        let now = self.now();
        let created = now.format(&Rfc3339).unwrap_or_default();
        self.store()
            .create_session(&hash(&token), user.email.as_str(), &created, now.unix_timestamp() + SESSION_SECONDS)
            .await?;
        tracing::info!(email = %user.email, "session opened");
        Ok(Some((token, user)))
    }

    /// The user of a live session.
    pub async fn session_user(&self, token: &str) -> Result<Option<User>> {
        let Some(email) = self.store().session_email(&hash(token), self.now().unix_timestamp()).await? else {
            return Ok(None);
        };
        let Ok(email) = Email::parse(&email) else { return Ok(None) };
        Ok(self.store().user(&email).await?.map(|s| s.user))
    }

    /// Ends a session.
    pub async fn close_session(&self, token: &str) -> Result<()> {
        Ok(self.store().delete_session(&hash(token)).await?)
    }
}
