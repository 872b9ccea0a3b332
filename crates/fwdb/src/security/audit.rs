//! Reading the audit log (`audit.log`, filled by the triggers of migration
//! `*_audit_triggers`). Every filter is a bound parameter.

use crate::error::{Error, ErrorKind, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

/// One audit row: who changed which row, when, from what to what.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditEntry {
    pub id: i64,
    pub schema: String,
    pub table: String,
    /// INSERT, UPDATE or DELETE.
    pub op: String,
    pub row_id: Option<String>,
    /// UPDATE: the changed columns' old values; DELETE: the whole row.
    pub old: Option<serde_json::Value>,
    /// UPDATE: the changed columns' new values; INSERT: the whole row.
    pub new: Option<serde_json::Value>,
    /// The application user (fwdb.actor, else updated_by/created_by), else the database role.
    pub actor: String,
    /// The database role of the session.
    pub db_user: Option<String>,
    pub txid: i64,
    pub at: DateTime<Utc>,
}

/// Filters of [`query_audit`]; all optional. Newest first unless `after_id` is set (then oldest first, for following).
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub schema: Option<String>,
    pub table: Option<String>,
    pub row_id: Option<String>,
    pub actor: Option<String>,
    pub txid: Option<i64>,
    pub since: Option<DateTime<Utc>>,
    /// Only rows with a larger id, oldest first (for `--follow`).
    pub after_id: Option<i64>,
    /// 1..=10000; 0 means 50.
    pub limit: u32,
}

impl AuditQuery {
    /// `table` as `schema.table` or `table`.
    pub fn table(mut self, spec: &str) -> Self {
        match spec.split_once('.') {
            Some((s, t)) => {
                self.schema = Some(s.to_string());
                self.table = Some(t.to_string());
            }
            None => self.table = Some(spec.to_string()),
        }
        self
    }
}

/// Reads audit rows matching `q`.
pub async fn query_audit(client: &Client, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
    let limit = match q.limit {
        0 => 50,
        n if n <= 10_000 => n as i64,
        n => return Err(Error::new(ErrorKind::Validation, format!("limit {n} is above 10000"))),
    };
    let mut conds: Vec<String> = Vec::new();
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut add = |cond: &str, p: Box<dyn ToSql + Sync + Send>| {
        params.push(p);
        conds.push(cond.replace('?', &format!("${}", params.len())));
    };
    if let Some(v) = &q.schema {
        add("schema_name = ?", Box::new(v.clone()));
    }
    if let Some(v) = &q.table {
        add("table_name = ?", Box::new(v.clone()));
    }
    if let Some(v) = &q.row_id {
        add("row_id = ?", Box::new(v.clone()));
    }
    if let Some(v) = &q.actor {
        add("actor = ?", Box::new(v.clone()));
    }
    if let Some(v) = q.txid {
        add("txid = ?", Box::new(v));
    }
    if let Some(v) = q.since {
        add("at >= ?", Box::new(v));
    }
    if let Some(v) = q.after_id {
        add("id > ?", Box::new(v));
    }
    add("true LIMIT ?", Box::new(limit));
    let limit_clause = conds.pop().unwrap_or_default().replace("true ", "");
    let where_ = if conds.is_empty() { String::new() } else { format!("WHERE {}", conds.join(" AND ")) };
    let order = if q.after_id.is_some() { "ASC" } else { "DESC" };
    let sql = format!(
        "SELECT id, schema_name, table_name, op, row_id, old_data, new_data, actor, to_jsonb(l) ->> 'db_user', txid, at
         FROM audit.log l {where_} ORDER BY id {order} {limit_clause}"
    );
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
    let rows = client.query(&sql, &refs).await?;
    Ok(rows
        .iter()
        .map(|r| AuditEntry {
            id: r.get(0),
            schema: r.get(1),
            table: r.get(2),
            op: r.get(3),
            row_id: r.get(4),
            old: r.get(5),
            new: r.get(6),
            actor: r.get(7),
            db_user: r.get(8),
            txid: r.get(9),
            at: r.get(10),
        })
        .collect())
}
