//! MongoDB: one client per process, built from the configuration ([`Mongo`]),
//! transactions ([`Mongo::transaction`]), the generic repositories of any
//! [`Document`] type ([`MongoRepository`], and [`VersionedRepository`] for
//! types with versions and history), and the design documents.

pub mod bson_fields;
mod client;
pub(crate) mod design;
pub(crate) mod document;
pub(crate) mod exec;
pub(crate) mod history;
pub(crate) mod repository;
pub(crate) mod versioned;

pub use client::{client, client_options, mongo_database};
pub use design::{
    design_from_doc, parse_design_id, Design, DesignPatch, DesignRepo, DesignStatus, Layer, LayerType, Metadata,
    NewDesign, DESIGNS, DESIGN_HISTORY,
};
pub use document::{Document, Plain, Tracked, MAX_DOCUMENT_BYTES};
pub use exec::{FindSpec, Mongo, MongoExec, MongoObserver, MongoTx, MAX_TX_ATTEMPTS};
pub use history::{HistoryEntry, HistoryPage};
pub use repository::MongoRepository;
pub use versioned::{ChangeScope, Versioned, VersionedChange, VersionedRepository, DEFAULT_HISTORY_LIMIT};
