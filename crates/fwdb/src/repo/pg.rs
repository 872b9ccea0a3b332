//! [`Repository`] for PostgreSQL: every operation of [`PgRepository`].

use super::statements::{cached, ph, Prepared};
use super::{conflict, PgRepository, Record, Repository};
use crate::error::{Error, ErrorKind, Result};
use crate::postgres::{Consistency, Executor};
use crate::query::{col, not_found, Page, Query, Statement};
use sea_query::{Expr, ExprTrait, UpdateStatement};
use uuid::Uuid;

impl<T: Record> PgRepository<T> {
    async fn write_one<E: Executor>(exec: &E, st: &Prepared<'_>, id: Uuid) -> Result<T> {
        let rows = exec.write(&st.sql, &st.params()).await.map_err(conflict::map::<T>)?;
        match rows.first() {
            Some(r) => T::from_row(r),
            None => Err(not_found(&T::qualified_name(), id)),
        }
    }

    fn find_by_id_sql() -> std::sync::Arc<str> {
        cached::<T>("find_by_id", || match Query::<T>::new().filter(T::ID.eq(Uuid::nil())).to_sql() {
            Ok(st) => st.sql,
            Err(e) => unreachable!("a query by id always builds: {e}"),
        })
    }

    /// `UPDATE ... SET deleted_at = <now or NULL> [, updated_by = $1] WHERE id = $n AND deleted_at IS <state>`.
    fn soft_delete_sql(op: &'static str, deleted_at: &'static str, delete: bool) -> std::sync::Arc<str> {
        cached::<T>(op, || {
            let mut q = UpdateStatement::new();
            q.table((T::SCHEMA, T::TABLE));
            if delete {
                q.value(deleted_at, Expr::current_timestamp());
            } else {
                q.value(deleted_at, Expr::null());
            }
            if T::AUDITED {
                q.value("updated_by", ph());
            }
            q.and_where(col(T::ID.name()).eq(ph()));
            if delete {
                q.and_where(Expr::col(deleted_at).is_null()).returning_col(T::ID.name());
            } else {
                q.and_where(Expr::col(deleted_at).is_not_null()).returning(Self::returning());
            }
            Statement::build(&q).sql
        })
    }
}

impl<T: Record, E: Executor> Repository<T, E> for PgRepository<T> {
    type New = T::New;
    type Patch = T::Patch;

    async fn find_by_id(&self, exec: &E, id: Uuid) -> Result<Option<T>> {
        let sql = self.hot.find_by_id.get_or_init(Self::find_by_id_sql);
        let rows = exec.read(sql, &[&id], self.consistency).await?;
        rows.first().map(T::from_row).transpose()
    }

    async fn get(&self, exec: &E, id: Uuid) -> Result<T> {
        self.find_by_id(exec, id).await?.ok_or_else(|| not_found(&T::qualified_name(), id))
    }

    async fn find_all(&self, exec: &E, query: &Query<T>) -> Result<Vec<T>> {
        query.fetch(exec).await
    }

    async fn find_page(&self, exec: &E, query: &Query<T>) -> Result<Page<T>> {
        query.fetch_page(exec).await
    }

    async fn count(&self, exec: &E, query: &Query<T>) -> Result<u64> {
        query.count(exec).await
    }

    async fn exists(&self, exec: &E, query: &Query<T>) -> Result<bool> {
        query.exists(exec).await
    }

    async fn create(&self, exec: &E, new: &T::New) -> Result<T> {
        T::check_new(new)?;
        let actor = exec.actor().map(|a| a.0);
        let params = T::new_params(new, &actor);
        let sql = self.hot.create.get_or_init(Self::create_sql);
        let rows = exec.write(sql, params.as_ref()).await.map_err(conflict::map::<T>)?;
        let row = rows.first().ok_or_else(|| Error::new(ErrorKind::Internal, "INSERT returned no row"))?;
        T::from_row(row)
    }

    async fn create_many(&self, exec: &E, new: &[T::New]) -> Result<Vec<Uuid>> {
        if new.is_empty() {
            return Ok(Vec::new());
        }
        let (st, ids) = Self::create_many_statement(new, exec.actor().map(|a| a.0))?;
        exec.write(&st.sql, &st.params()).await.map_err(conflict::map::<T>)?;
        Ok(ids)
    }

    async fn update(&self, exec: &E, id: Uuid, patch: &T::Patch) -> Result<T> {
        let actor = exec.actor().map(|a| a.0);
        let st = Self::update_statement(&id, patch, &actor)?;
        match st {
            // Nothing to write: the row as the primary has it (as a write would return it).
            None => self.clone().with_consistency(Consistency::Strong).get(exec, id).await,
            Some(st) => Self::write_one(exec, &st, id).await,
        }
    }

    async fn delete(&self, exec: &E, id: Uuid) -> Result<()> {
        let Some(d) = T::DELETED_AT else { return self.purge(exec, id).await };
        let sql = Self::soft_delete_sql("delete", d, true);
        let actor = exec.actor().map(|a| a.0);
        let rows = if T::AUDITED { exec.write(&sql, &[&actor, &id]).await } else { exec.write(&sql, &[&id]).await };
        if rows.map_err(conflict::map::<T>)?.is_empty() {
            return Err(not_found(&T::qualified_name(), id));
        }
        Ok(())
    }

    async fn restore(&self, exec: &E, id: Uuid) -> Result<T> {
        let Some(d) = T::DELETED_AT else { return self.get(exec, id).await };
        let sql = Self::soft_delete_sql("restore", d, false);
        let actor = exec.actor().map(|a| a.0);
        let rows = if T::AUDITED { exec.write(&sql, &[&actor, &id]).await } else { exec.write(&sql, &[&id]).await };
        match rows.map_err(conflict::map::<T>)?.first() {
            Some(r) => T::from_row(r),
            None => Err(not_found(&format!("soft-deleted {}", T::qualified_name()), id)),
        }
    }

    async fn purge(&self, exec: &E, id: Uuid) -> Result<()> {
        let sql = cached::<T>("purge", || {
            let mut q = sea_query::DeleteStatement::new();
            q.from_table((T::SCHEMA, T::TABLE)).and_where(col(T::ID.name()).eq(ph())).returning_col(T::ID.name());
            Statement::build(&q).sql
        });
        let rows = exec.write(&sql, &[&id]).await.map_err(conflict::map::<T>)?;
        if rows.is_empty() {
            return Err(not_found(&T::qualified_name(), id));
        }
        Ok(())
    }

    async fn find_many_by_ids(&self, exec: &E, ids: &[Uuid]) -> Result<Vec<T>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.query().filter(T::ID.in_(ids.iter().copied())).fetch(exec).await
    }
}
