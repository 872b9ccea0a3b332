//! Design documents (architecture 7.2) in the `designs` collection: the model
//! and its [`crate::mongo::Document`] and [`crate::mongo::Versioned`]
//! declarations (`model`), its validation (`validate`), and [`DesignRepo`],
//! the generic versioned repository plus what only designs do (`repo`).
//!
//! Ids are UUIDs stored as their canonical text (`_id`, `userId`, `avatarId`,
//! `catalogItemIds`), the same ids PostgreSQL uses, so references between the
//! stores compare as strings. History entries beyond the document's limit
//! move to `design_history` (migration `20240101000100_design_history`).

mod model;
mod repo;
mod validate;

pub use model::{Design, DesignPatch, DesignStatus, Layer, LayerType, Metadata, NewDesign};
pub use repo::{design_from_doc, DesignRepo};
pub use validate::parse_design_id;

pub const DESIGNS: &str = "designs";
pub const DESIGN_HISTORY: &str = "design_history";
pub const MAX_NAME_CHARS: usize = 255;
pub const MAX_TAGS: usize = 64;
pub const MAX_TAG_CHARS: usize = 64;
pub const MAX_DESCRIPTION_CHARS: usize = 4000;
pub const MAX_LAYERS: usize = 500;

#[cfg(test)]
mod tests;
