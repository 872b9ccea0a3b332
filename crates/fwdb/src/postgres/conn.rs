//! A pooled connection: tokio-postgres' client and the statements prepared on
//! it. deadpool-postgres connects it (we wrap its `Manager`); the check on
//! checkout and the statements are ours. Its statement cache hashes the SQL
//! text with SipHash under a RwLock and clones an `Arc<OnceCell>` per lookup,
//! several times this map's cost (docs/benchmarks.md). A connection has one user at a time, so a map behind an uncontended mutex,
//! hashed with foldhash, is enough.

use deadpool::managed::{Metrics, RecycleError, RecycleResult};
use deadpool_postgres::ClientWrapper;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio_postgres::Statement;

use super::replica_health::lock;

/// Statements kept per connection. Each holds a plan in its backend; an
/// application has a few dozen statement shapes, so reaching this means
/// shapes are being generated (a list literal in the SQL, say), and an
/// arbitrary entry makes room rather than the backend growing forever.
const MAX_STATEMENTS: usize = 512;

/// Creates [`Client`]s through deadpool-postgres' own manager (connect,
/// TLS, the connection's task) and checks them on checkout itself.
pub(crate) struct Manager {
    inner: deadpool_postgres::Manager,
    /// `postgres.routing.verify_on_checkout`: a round trip on every checkout.
    verify: bool,
}

impl Manager {
    pub(crate) fn new(inner: deadpool_postgres::Manager, verify: bool) -> Manager {
        Manager { inner, verify }
    }
}

impl deadpool::managed::Manager for Manager {
    /// Boxed: deadpool moves each connection by value out of its slots and
    /// through every checkout's futures; a pointer moves cheaper than the
    /// ~250-byte client (tokio-postgres keeps its socket config inline).
    type Type = Box<Client>;
    type Error = tokio_postgres::Error;

    async fn create(&self) -> Result<Box<Client>, tokio_postgres::Error> {
        Ok(Box::new(Client { wrapper: self.inner.create().await?, statements: Mutex::default() }))
    }

    /// Not delegated: deadpool's pool embeds this future in every checkout's,
    /// and deadpool-postgres' (which holds a `simple_query` future) made a
    /// checkout future 2 KB, moved (memcpy) a dozen times per checkout. The
    /// common check (`is_closed`) needs no future; the rare round trip is boxed.
    async fn recycle(&self, client: &mut Box<Client>, _: &Metrics) -> RecycleResult<tokio_postgres::Error> {
        if client.is_closed() {
            return Err(RecycleError::message("connection closed"));
        }
        if self.verify {
            Box::pin(client.simple_query("")).await?;
        }
        Ok(())
    }

    fn detach(&self, client: &mut Box<Client>) {
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
        lock(&self.statements).clear();
    }
}
