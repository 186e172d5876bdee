//! Mapping packs, as the application sees them: built in, or read from a folder.

pub use cutover_engine::pack::PackSource as Packs;
