//! MongoDB: one client per process, built from the configuration ([`Mongo`]),
//! transactions ([`Mongo::transaction`]), and the design repository.

mod client;
pub(crate) mod design;
pub(crate) mod exec;

pub use client::{client, client_options, mongo_database};
pub use design::{
    check_avatar, design_from_doc, parse_design_id, Design, DesignPatch, DesignRepo, DesignStatus, HistoryEntry,
    HistoryPage, Layer, LayerType, Metadata, NewDesign, DEFAULT_HISTORY_LIMIT, DESIGNS, DESIGN_HISTORY,
    MAX_DOCUMENT_BYTES,
};
pub use exec::{FindSpec, Mongo, MongoExec, MongoTx, MAX_TX_ATTEMPTS};
