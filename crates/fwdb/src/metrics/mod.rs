//! Metrics (architecture 10.1): what the cluster and the servers report,
//! gathered by a [`Collector`] into a [`MetricsSnapshot`], rendered in the
//! Prometheus text format by [`render`]; query latency, errors and the
//! slow-query log kept by [`QueryMetrics`], a hook on the cluster.

mod collect;
mod query;
mod render;

pub use collect::{Collector, MetricsSnapshot, MigrationGauge, MongoStats, PgServerStats, TopStatement};
pub use query::{Histogram, LatencyPoint, QueryMetrics, QuerySnapshot, SlowQuery};
pub use render::{render, CONTENT_TYPE};
