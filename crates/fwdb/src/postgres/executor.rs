//! What repositories run on: the routed cluster (reads to replicas, writes to
//! the primary), one transaction, or a plain connection. Repositories are
//! generic over [`Executor`], so the same code works on the pool and inside a
//! transaction (architecture 5.1).

use crate::error::Result;
use std::future::Future;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

/// The parameters of a statement, always bound, never interpolated.
pub type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// Any healthy replica within `max_replica_lag`, else the primary.
    #[default]
    Eventual,
    /// The primary.
    Strong,
    /// A replica that has replayed at least this WAL position (the caller's
    /// last commit), else the primary.
    ReadYourWrites(Lsn),
    /// A replica that has replayed every write made through the
    /// [`PgCluster`](super::PgCluster) handle that runs the read (see
    /// `PgCluster::session`), else the primary. The position is asked of the
    /// primary by the first such read after a write, never by the write.
    /// Transactions and plain connections see their own writes anyway.
    ReadOwnWrites,
}

/// A PostgreSQL WAL position (`pg_lsn`), as a 64-bit integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// Parses PostgreSQL's text form, `16/B374D848`.
    pub fn parse(text: &str) -> Option<Lsn> {
        let (hi, lo) = text.trim().split_once('/')?;
        Some(Lsn((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?))
    }
}

impl std::fmt::Display for Lsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// Who is making a change: becomes `created_by` / `updated_by` and the actor of audit rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Actor(pub Uuid);

/// Runs statements somewhere. Reads may be routed to a replica; writes and
/// everything inside a transaction go to the primary.
pub trait Executor: Send + Sync {
    /// A statement that only reads.
    fn read(
        &self,
        sql: &str,
        params: Params<'_>,
        consistency: Consistency,
    ) -> impl Future<Output = Result<Vec<Row>>> + Send;

    /// A statement that may write; its rows (RETURNING) are returned.
    fn write(&self, sql: &str, params: Params<'_>) -> impl Future<Output = Result<Vec<Row>>> + Send;

    /// The actor set on this executor (a call's or a transaction's), if any.
    fn actor(&self) -> Option<Actor>;
}

/// A single connection: reads and writes both run on it; no actor.
impl Executor for tokio_postgres::Client {
    async fn read(&self, sql: &str, params: Params<'_>, _: Consistency) -> Result<Vec<Row>> {
        Ok(self.query(sql, params).await?)
    }

    async fn write(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        Ok(self.query(sql, params).await?)
    }

    fn actor(&self) -> Option<Actor> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_round_trip_through_postgres_text_form() {
        let l = Lsn::parse("16/B374D848").unwrap();
        assert_eq!(l.0, (0x16 << 32) | 0xB374D848);
        assert_eq!(l.to_string(), "16/B374D848");
        assert!(Lsn::parse("0/1") < Lsn::parse("1/0"));
        assert_eq!(Lsn::parse("nonsense"), None);
    }
}
