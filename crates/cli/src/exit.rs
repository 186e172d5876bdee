//! Exit codes and error output: what a script can rely on.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | the work completed |
//! | 1 | failure: store, file or internal error; the work did not complete |
//! | 2 | usage or invalid input |
//! | 3 | refused by the process: a gate is closed or the phase is wrong |
//! | 4 | not allowed: unknown or unauthorised user, or a project not visible to the user |
//! | 5 | integrity: a verification found tampering or differences |

use cutover_app::AppError;
use cutover_core::DomainError;
use serde_json::json;

/// Failure.
pub const FAILURE: u8 = 1;
/// Usage or invalid input.
pub const USAGE: u8 = 2;
/// Refused by the process.
pub const REFUSED: u8 = 3;
/// Not allowed.
pub const FORBIDDEN: u8 = 4;
/// Integrity check failed.
pub const INTEGRITY: u8 = 5;

/// The exit code and message of an error.
pub fn classify(err: &anyhow::Error) -> (u8, String) {
    let code = match err.downcast_ref::<AppError>() {
        Some(AppError::Domain(d)) => domain_code(d),
        Some(AppError::NoActor | AppError::UnknownUser(_)) => FORBIDDEN,
        Some(AppError::Pack(_) | AppError::Password(_) | AppError::Config(_)) => USAGE,
        Some(AppError::Engine(_) | AppError::Verify(_)) => FAILURE,
        Some(AppError::StalePreview { .. } | AppError::Locked { .. }) => REFUSED,
        Some(AppError::Store(cutover_store::StoreError::Exists(_))) => USAGE,
        Some(AppError::Store(_)) => FAILURE,
        None => match err.downcast_ref::<DomainError>() {
            Some(d) => domain_code(d),
            None => FAILURE,
        },
    };
    (code, format!("{err:#}"))
}

fn domain_code(d: &DomainError) -> u8 {
    match d {
        DomainError::GateClosed { .. } | DomainError::WrongPhase { .. } => REFUSED,
        DomainError::Forbidden(_) | DomainError::NotFound(_) => FORBIDDEN,
        DomainError::Invalid { .. } => USAGE,
    }
}

/// The error as JSON for `--json` callers.
pub fn error_json(err: &anyhow::Error) -> serde_json::Value {
    let app = err.downcast_ref::<AppError>();
    let domain = app
        .and_then(|a| match a {
            AppError::Domain(d) => Some(d),
            _ => None,
        })
        .or_else(|| err.downcast_ref::<DomainError>());
    let code = app.map(AppError::code).or(domain.map(DomainError::code)).unwrap_or("failure");
    json!({"error": {
        "code": code,
        "message": format!("{err:#}"),
        "missing": domain.map(|d| d.missing().to_vec()).unwrap_or_default(),
    }})
}
