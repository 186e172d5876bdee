//! The domain core of cutover: the migration process as pure state transitions.
//!
//! Nothing here does I/O. Every change is a [`Command`] applied to a [`Project`] by
//! [`Project::handle`], which returns the new project plus the [`Event`]s to audit, or a
//! [`DomainError`] naming every reason for the refusal. Time comes in with the command's
//! [`Ctx`], so decisions are reproducible in tests.

pub mod audit;
pub mod checklist;
pub mod documents;
pub mod error;
pub mod ids;
pub mod party;
pub mod plan;
pub mod project;
pub mod retainer;
pub mod template;

pub use error::{DomainError, Unmet};
pub use ids::{Email, Hours, OrgName, ProjectKey, Text, mask_url};
pub use party::{Party, PartyKind, Role, User};
pub use project::{
    ArchiveSeal, Command, Ctx, Decision, Event, Phase, Project, RunKind, RunOutcome, Status, Verification,
};
