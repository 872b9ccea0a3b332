//! PostgreSQL: connections (TLS per libpq's sslmode), and later pools and routing.

mod cluster;
mod conn;
mod connect;
mod executor;
mod mux;
mod observe;
mod pick;
mod pool;
mod pool_bench;
mod probe;
mod replica_health;
mod shapes;
mod status;
mod tls;
mod tx;

pub use cluster::{PgCluster, Route};
pub use connect::{connect, ConnectTarget};
pub use executor::{Actor, Consistency, Executor, Lsn, Params};
pub use observe::{normalize_sql, operation_of, QueryEvent, QueryKind, QueryObserver};
pub use pool::{PgConn, PoolStatus};
pub use pool_bench::{measure_pool_checkout, CheckoutCost};
pub use shapes::{Lane, ReadHint, ShapeStatus};
pub use status::{ClusterStatus, DurationHistogram, PrimaryStatus, ReplicaStatus};
pub use tx::{IsolationLevel, Tx, TxOptions};
