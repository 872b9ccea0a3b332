//! Schema migrations for PostgreSQL and MongoDB (architecture 6.1 and 6.2).
//!
//! Files live in `migrations/postgres/<UTC yyyymmddHHMMSS>_<name>.up.sql` /
//! `.down.sql` and `migrations/mongodb/<...>.up.json` / `.down.json` (a JSON
//! array of database commands). They are compiled in ([`MigrationSource::Embedded`])
//! or read from a folder. Each database keeps an append-only history
//! (`fwdb_migrations.history`, collection `fwdb_migrations`) of SHA-256
//! checksums and outcomes, and a lock makes any number of concurrent runners
//! apply each migration exactly once.
//!
//! ```no_run
//! # async fn demo(config: fwdb::Config) -> fwdb::Result<()> {
//! use fwdb::{connect, ConnectTarget, MigrationSource, Migrator, Store, UpOptions};
//! // The advisory lock lives on its own connection (see pg.rs).
//! let lock_conn = connect(&config.postgres, ConnectTarget::Primary).await?;
//! let conn = connect(&config.postgres, ConnectTarget::Primary).await?;
//! let set = MigrationSource::Embedded.load(Store::Postgres)?;
//! let report = Migrator::postgres(&lock_conn, &conn, &set)?.up(&UpOptions::default()).await?;
//! # let _ = report; Ok(()) }
//! ```

mod checksum;
mod engine;
mod history;
mod lint;
mod mongo;
mod mongo_lock;
mod names;
mod new;
mod pg;
mod plan;
mod source;
mod sql;

/// Backups leave the lock's collection out (its state is the running migrator's).
pub(crate) use mongo_lock::LOCK_COLLECTION;

use std::time::Duration;

pub use engine::{DownOptions, Event, Plan, PlanStep, Ran, Report, UpOptions};
pub use history::{HistoryEntry, Outcome};
pub use lint::LintFinding;
pub use names::Direction;
pub use new::new_migration;
pub use plan::{MigrationStatus, State, Status};
pub use source::{Migration, MigrationSet, MigrationSource, Script, Store};

use engine::EventSink;
use mongo::MongoBackend;
use pg::PgBackend;

use crate::error::{Error, Result};

/// Runs migrations of one store against one database.
pub struct Migrator<'a> {
    target: Target<'a>,
    set: &'a MigrationSet,
    events: Option<EventSink>,
}

enum Target<'a> {
    Postgres(PgBackend<'a>),
    Mongo(MongoBackend<'a>),
}

macro_rules! dispatch {
    ($self:ident, $b:ident => $e:expr) => {
        match &$self.target {
            Target::Postgres($b) => $e,
            Target::Mongo($b) => $e,
        }
    };
}

impl<'a> Migrator<'a> {
    /// PostgreSQL needs two connections to the same database: `lock_conn`
    /// only holds the advisory lock (and must not be in a transaction),
    /// `conn` runs the migrations. See the `pg` module for why.
    pub fn postgres(
        lock_conn: &'a tokio_postgres::Client,
        conn: &'a tokio_postgres::Client,
        set: &'a MigrationSet,
    ) -> Result<Self> {
        Self::check_store(set, Store::Postgres)?;
        Ok(Migrator { target: Target::Postgres(PgBackend::new(lock_conn, conn)), set, events: None })
    }

    /// MongoDB: history in `fwdb_migrations`, the lock in `fwdb_migrations_lock`.
    pub fn mongo(db: &'a mongodb::Database, set: &'a MigrationSet) -> Result<Self> {
        Self::check_store(set, Store::Mongo)?;
        Ok(Migrator { target: Target::Mongo(MongoBackend::new(db, mongo::DEFAULT_LEASE)), set, events: None })
    }

    fn check_store(set: &MigrationSet, store: Store) -> Result<()> {
        if set.store() != store {
            return Err(Error::invalid_input(format!("{} migrations given to the {store} migrator", set.store())));
        }
        Ok(())
    }

    /// The MongoDB lock's lease (default 30 s): how long a dead runner's lock
    /// blocks the others. Renewed every third of it. No effect on PostgreSQL,
    /// whose lock dies with its connection.
    pub fn with_lock_lease(mut self, lease: Duration) -> Self {
        if let Target::Mongo(m) = &self.target {
            let db = m_db(m);
            self.target = Target::Mongo(MongoBackend::new(db, lease.max(Duration::from_millis(300))));
        }
        self
    }

    /// Called on progress: waiting for the lock, each migration started and finished.
    pub fn on_event(mut self, f: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.events = Some(std::sync::Arc::new(f));
        self
    }

    pub fn store(&self) -> Store {
        self.set.store()
    }

    /// Applied / pending / failed / changed, without taking the lock.
    pub async fn status(&self) -> Result<Status> {
        dispatch!(self, b => engine::status(b, self.set).await)
    }

    /// What `up` would run, and why it would refuse, without running anything.
    pub async fn plan(&self, opts: &UpOptions) -> Result<Plan> {
        dispatch!(self, b => engine::plan(b, self.set, opts).await)
    }

    pub async fn up(&self, opts: &UpOptions) -> Result<Report> {
        dispatch!(self, b => engine::up(b, self.set, opts, &self.events).await)
    }

    pub async fn down(&self, opts: &DownOptions) -> Result<Report> {
        dispatch!(self, b => engine::down(b, self.set, opts, &self.events).await)
    }

    /// Fails when an applied file changed or a migration failed, naming the files.
    pub async fn verify(&self) -> Result<Status> {
        dispatch!(self, b => engine::verify(b, self.set).await)
    }

    /// Accepts a changed file's new checksum (or a failed migration finished
    /// by hand), recording the reason.
    pub async fn repair(&self, version: i64, reason: &str) -> Result<MigrationStatus> {
        dispatch!(self, b => engine::repair(b, self.set, version, reason, &self.events).await)
    }

    /// Records every migration up to `version` as applied without running it.
    /// Returns how many were recorded.
    pub async fn baseline(&self, version: i64, reason: Option<&str>) -> Result<usize> {
        dispatch!(self, b => engine::baseline(b, self.set, version, reason, &self.events).await)
    }

    /// The raw history, oldest first.
    pub async fn history(&self) -> Result<Vec<HistoryEntry>> {
        use engine::Backend;
        dispatch!(self, b => b.history().await)
    }
}

fn m_db<'a>(m: &MongoBackend<'a>) -> &'a mongodb::Database {
    m.db()
}

/// Parses a version given on the command line (`--to`, `repair --accept`).
pub fn parse_version(s: &str) -> Result<i64> {
    names::parse_version(s.trim()).map_err(Error::invalid_input)
}
