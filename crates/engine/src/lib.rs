//! The migration engine: mapping packs, the field-rule language, connectors and runs.

pub mod expr;
pub mod value;
pub mod ddl;
pub mod pack;
