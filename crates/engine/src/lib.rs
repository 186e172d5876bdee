//! The migration engine: mapping packs, the field-rule language, connectors and runs.

pub mod archive;
pub mod connect;
pub mod ddl;
pub mod delta;
pub mod expr;
pub mod failpoint;
pub mod fuzzing;
pub mod ids;
pub mod live;
pub mod mysql;
pub mod pack;
mod pages;
mod pgcopy;
pub mod preview;
pub mod run;
pub mod scope;
pub mod state;
pub mod value;
pub mod verify;
