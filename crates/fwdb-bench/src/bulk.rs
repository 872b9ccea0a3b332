//! The bulk insert of `fwdb-bench postgres` (10,000 rows through each
//! contender, COPY and `psql \\copy`) and pgbench, the server's ceiling.

use crate::contenders::{users, Ctx, SQL_BULK};
use crate::Res;
use fwdb::{NewUser, Repository};
use std::time::Instant;
use uuid::Uuid;

pub(crate) const BULK_ROWS: usize = 10_000;

pub(crate) struct BulkRows {
    pub(crate) ids: Vec<Uuid>,
    pub(crate) emails: Vec<String>,
    pub(crate) first: Vec<String>,
    pub(crate) last: Vec<String>,
    pub(crate) role: Vec<String>,
}

pub(crate) fn bulk_rows(ctx: &Ctx) -> BulkRows {
    let n = BULK_ROWS;
    BulkRows {
        ids: (0..n).map(|_| Uuid::new_v4()).collect(),
        emails: (0..n).map(|_| ctx.email()).collect(),
        first: (0..n).map(|i| format!("First{i}")).collect(),
        last: (0..n).map(|i| format!("Last{i}")).collect(),
        role: vec!["user".to_string(); n],
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) enum BulkWho {
    Copy,
    PsqlCopy,
    Raw,
    Fwdb,
    Sqlx,
    SeaOrm,
}

impl BulkWho {
    pub(crate) fn name(self) -> &'static str {
        match self {
            BulkWho::Copy => "COPY FROM STDIN (tokio-postgres, csv)",
            BulkWho::PsqlCopy => "psql \\copy (csv file, incl. process start)",
            BulkWho::Raw => "raw tokio-postgres (unnest, prepared)",
            BulkWho::Fwdb => "fwdb repo create_many",
            BulkWho::Sqlx => "sqlx (unnest)",
            BulkWho::SeaOrm => "SeaORM insert_many",
        }
    }
}

pub(crate) struct PsqlCtx {
    pub(crate) bin: std::path::PathBuf,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: String,
    pub(crate) password: String,
    pub(crate) db: String,
    pub(crate) dir: std::path::PathBuf,
}

/// Seconds to insert 10,000 rows through `who`.
pub(crate) async fn bulk(ctx: &Ctx, who: BulkWho, psql: &PsqlCtx) -> Res<f64> {
    let rows = bulk_rows(ctx);
    let none: Option<Uuid> = None;
    match who {
        BulkWho::Copy => {
            use futures::SinkExt;
            let mut csv = String::with_capacity(BULK_ROWS * 100);
            let start = Instant::now();
            for i in 0..BULK_ROWS {
                csv.push_str(&format!(
                    "{},{},{},{},{}\n",
                    rows.ids[i], rows.emails[i], rows.first[i], rows.last[i], rows.role[i]
                ));
            }
            let c = &ctx.raw[0].c;
            let sink = c
                .copy_in("COPY shared.users (id, email, first_name, last_name, role) FROM STDIN WITH (FORMAT csv)")
                .await?;
            futures::pin_mut!(sink);
            sink.send(bytes::Bytes::from(csv)).await?;
            let n = sink.finish().await?;
            assert_eq!(n as usize, BULK_ROWS);
            Ok(start.elapsed().as_secs_f64())
        }
        BulkWho::PsqlCopy => {
            let file = psql.dir.join("bulk.csv");
            let mut csv = String::with_capacity(BULK_ROWS * 100);
            for i in 0..BULK_ROWS {
                csv.push_str(&format!(
                    "{},{},{},{},{}\n",
                    rows.ids[i], rows.emails[i], rows.first[i], rows.last[i], rows.role[i]
                ));
            }
            std::fs::write(&file, csv)?;
            let start = Instant::now();
            let out = tokio::process::Command::new(psql.bin.join("psql"))
                .args([
                    "-X",
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-h",
                    &psql.host,
                    "-p",
                    &psql.port.to_string(),
                    "-U",
                    &psql.user,
                    "-d",
                    &psql.db,
                ])
                .arg("-c")
                .arg(format!(
                    "\\copy shared.users (id, email, first_name, last_name, role) FROM '{}' WITH (FORMAT csv)",
                    file.display()
                ))
                .env("PGPASSWORD", &psql.password)
                .env("PGSSLMODE", "disable")
                .output()
                .await?;
            let secs = start.elapsed().as_secs_f64();
            if !out.status.success() {
                return Err(format!("psql \\copy failed: {}", String::from_utf8_lossy(&out.stderr)).into());
            }
            Ok(secs)
        }
        BulkWho::Raw => {
            let start = Instant::now();
            let r = &ctx.raw[0];
            let n =
                r.c.execute(&r.bulk, &[&rows.ids, &rows.emails, &rows.first, &rows.last, &rows.role, &none, &none])
                    .await?;
            assert_eq!(n as usize, BULK_ROWS);
            Ok(start.elapsed().as_secs_f64())
        }
        BulkWho::Fwdb => {
            let new: Vec<NewUser> = (0..BULK_ROWS)
                .map(|i| NewUser {
                    email: rows.emails[i].clone(),
                    first_name: rows.first[i].clone(),
                    last_name: rows.last[i].clone(),
                    role: rows.role[i].clone(),
                })
                .collect();
            let start = Instant::now();
            let ids = ctx.strong.create_many(&ctx.cluster, &new).await?;
            assert_eq!(ids.len(), BULK_ROWS);
            Ok(start.elapsed().as_secs_f64())
        }
        BulkWho::Sqlx => {
            let start = Instant::now();
            let res = sqlx::query(SQL_BULK)
                .bind(&rows.ids)
                .bind(&rows.emails)
                .bind(&rows.first)
                .bind(&rows.last)
                .bind(&rows.role)
                .bind(none)
                .bind(none)
                .execute(&ctx.sqlx)
                .await?;
            assert_eq!(res.rows_affected() as usize, BULK_ROWS);
            Ok(start.elapsed().as_secs_f64())
        }
        BulkWho::SeaOrm => {
            use sea_orm::{ActiveValue::Set, EntityTrait};
            let models: Vec<users::ActiveModel> = (0..BULK_ROWS)
                .map(|i| users::ActiveModel {
                    id: Set(rows.ids[i]),
                    email: Set(rows.emails[i].clone()),
                    first_name: Set(rows.first[i].clone()),
                    last_name: Set(rows.last[i].clone()),
                    role: Set(rows.role[i].clone()),
                    ..Default::default()
                })
                .collect();
            let start = Instant::now();
            users::Entity::insert_many(models).exec(&ctx.orm).await?;
            Ok(start.elapsed().as_secs_f64())
        }
    }
}

pub(crate) async fn pgbench(psql: &PsqlCtx, db: &str, clients: usize, secs: f64) -> Res<f64> {
    let out = tokio::process::Command::new(psql.bin.join("pgbench"))
        .args(["-n", "-S", "-M", "prepared", "-h", &psql.host, "-p", &psql.port.to_string(), "-U", &psql.user])
        .args([
            "-c",
            &clients.to_string(),
            "-j",
            &clients.min(2).to_string(),
            "-T",
            &(secs.ceil() as u64).max(1).to_string(),
            db,
        ])
        .env("PGPASSWORD", &psql.password)
        .env("PGSSLMODE", "disable")
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("pgbench failed: {}{}", text, String::from_utf8_lossy(&out.stderr)).into());
    }
    text.lines()
        .find_map(|l| l.strip_prefix("tps = ").and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok()))
        .ok_or_else(|| format!("no tps in pgbench output: {text}").into())
}
