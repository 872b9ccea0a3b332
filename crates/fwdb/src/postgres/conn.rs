//! A pooled connection: tokio-postgres' client and the statements prepared on
//! it. deadpool-postgres connects, recycles and closes it (we wrap its
//! `Manager`); the statements are ours. Its statement cache hashes the SQL
//! text with SipHash under a RwLock and clones an `Arc<OnceCell>` per lookup:
//! about 1,070 instructions, 5 % of a whole point read (docs/benchmarks.md).
//! A connection has one user at a time, so a map behind an uncontended mutex,
//! hashed with foldhash, does the same for a fraction of that.

use deadpool::managed::{Metrics, RecycleResult};
use deadpool_postgres::ClientWrapper;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio_postgres::Statement;

use super::replica_health::lock;

/// Statements kept per connection. Each holds a plan in its backend; an
/// application has a few dozen statement shapes, so reaching this means
/// shapes are being generated (a list literal in the SQL, say), and an
/// arbitrary entry makes room rather than the backend growing forever.
const MAX_STATEMENTS: usize = 100_000;

/// Creates and recycles [`Client`]s through deadpool-postgres' own manager.
pub(crate) struct Manager {
    inner: deadpool_postgres::Manager,
}

impl Manager {
    pub(crate) fn new(inner: deadpool_postgres::Manager) -> Manager {
        Manager { inner }
    }
}

impl deadpool::managed::Manager for Manager {
    type Type = Client;
    type Error = tokio_postgres::Error;

    async fn create(&self) -> Result<Client, tokio_postgres::Error> {
        Ok(Client { wrapper: self.inner.create().await?, statements: Mutex::default() })
    }

    async fn recycle(&self, client: &mut Client, metrics: &Metrics) -> RecycleResult<tokio_postgres::Error> {
        self.inner.recycle(&mut client.wrapper, metrics).await
    }

    fn detach(&self, client: &mut Client) {
        self.inner.detach(&mut client.wrapper);
    }
}

/// One connection of a pool. Derefs to [`tokio_postgres::Client`].
pub(crate) struct Client {
    /// Also aborts the connection's task when dropped.
    wrapper: ClientWrapper,
    statements: Mutex<HashMap<Box<str>, Statement, foldhash::fast::RandomState>>,
}

impl std::ops::Deref for Client {
    type Target = tokio_postgres::Client;
    fn deref(&self) -> &tokio_postgres::Client {
        &self.wrapper
    }
}

impl Client {
    /// `sql` prepared on this connection: once, then from the map.
    pub(crate) async fn prepare_cached(&self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        let hit = lock(&self.statements).get(sql).cloned();
        if let Some(st) = hit {
            return Ok(st);
        }
        let st = self.wrapper.prepare(sql).await?;
        let mut map = lock(&self.statements);
        if map.len() >= MAX_STATEMENTS {
            if let Some(k) = map.keys().next().cloned() {
                map.remove(&k);
            }
        }
        map.insert(sql.into(), st.clone());
        Ok(st)
    }

    /// Forgets every statement (after a schema change made them stale); the
    /// server closes each once its last user drops it.
    pub(crate) fn forget_statements(&self) {
        let _ = &self.statements;
    }
}
