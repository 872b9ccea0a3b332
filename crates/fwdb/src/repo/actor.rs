//! Setting the actor of one call: `repo.create(&with_actor(&pool, actor), &new)`.

use crate::error::Result;
use crate::postgres::{Actor, Consistency, Executor, Params};
use tokio_postgres::Row;

/// An executor that runs on another one with `actor` as the actor.
#[derive(Debug)]
pub struct WithActor<'a, E> {
    inner: &'a E,
    actor: Actor,
}

/// `exec`, with `actor` as `created_by` / `updated_by` of what runs on it.
pub fn with_actor<E: Executor>(exec: &E, actor: Actor) -> WithActor<'_, E> {
    WithActor { inner: exec, actor }
}

impl<E: Executor> Executor for WithActor<'_, E> {
    async fn read(&self, sql: &str, params: Params<'_>, consistency: Consistency) -> Result<Vec<Row>> {
        self.inner.read(sql, params, consistency).await
    }

    async fn write(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        self.inner.write(sql, params).await
    }

    fn actor(&self) -> Option<Actor> {
        Some(self.actor)
    }
}
