//! Metrics (architecture 10.1): what the cluster and the servers report,
//! gathered by a [`Collector`] into a [`MetricsSnapshot`], rendered in the
//! Prometheus text format by [`render`] (through the `prometheus-client`
//! encoder, so every family is typed and counters end in `_total`); query latency, errors and the
//! slow-query log kept by [`QueryMetrics`], a hook on the cluster; MongoDB
//! operations by [`MongoOpMetrics`]; backups by [`BackupRuns`] (the schedule)
//! and [`BackupCatalog`] (the storage).

mod backup;
mod collect;
mod exposition;
mod mongo;
mod query;
mod render;

pub use crate::backup::BackupRuns;
pub use backup::{backup_catalog_text, BackupCatalog, BackupGauge};
#[cfg(test)]
pub(crate) use backup::{merge_backups, render_backups};
pub use collect::{Collector, MetricsSnapshot, MigrationGauge, MongoStats, PgServerStats, TopStatement};
pub use exposition::CONTENT_TYPE;
pub use mongo::{mongo_error_code, MongoOpMetrics, MongoOpSnapshot};
pub use query::{Histogram, LatencyPoint, QueryMetrics, QuerySnapshot, SlowQuery};
pub use render::render;
