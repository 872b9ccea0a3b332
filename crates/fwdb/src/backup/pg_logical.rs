//! `--kind logical`: pg_dump custom format, one object per database, with
//! exact row counts taken in the same snapshot; restores through pg_restore.

use super::manifest::{BackupKind, Manifest, ObjectEntry};
use super::pgtools;
use super::Backups;
use crate::config::PostgresConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::security::quote_existing;
use std::collections::BTreeMap;
use std::process::Stdio;

impl Backups {
    /// The PostgreSQL settings of the backup role (`backup.pg_user`, else
    /// the admin login), on `database`.
    pub(crate) fn backup_pg_config(&self, database: &str) -> PostgresConfig {
        let mut pg = match &self.cfg.backup.pg_user {
            Some(u) if *u == self.cfg.postgres.user => self.cfg.postgres.clone(),
            Some(u) => {
                let mut pg = self.cfg.postgres.clone();
                pg.user = u.clone();
                pg.password = self.cfg.backup.pg_password.clone();
                pg.tls.cert_file = None;
                pg.tls.key_file = None;
                pg
            }
            None => self.cfg.postgres.as_admin(),
        };
        pg.database = database.to_string();
        pg
    }

    /// A logical backup of `databases` (default: `postgres.database`).
    pub async fn create_logical(&self, databases: Option<Vec<String>>) -> Result<Manifest> {
        let started = chrono::Utc::now();
        let mut m = self.new_manifest(BackupKind::Logical, started);
        let dbs = databases.unwrap_or_else(|| vec![self.cfg.postgres.database.clone()]);
        let host =
            self.cfg.postgres.primary.first().ok_or_else(|| Error::invalid_input("postgres.primary is empty"))?;
        m.servers.push(host.to_string());
        for db in &dbs {
            let pg = self.backup_pg_config(db);
            let client = crate::postgres::connect(&pg, crate::postgres::ConnectTarget::Primary).await?;
            if m.versions.is_empty() {
                let v: String = client.query_one("show server_version", &[]).await?.get(0);
                m.versions.push(format!("PostgreSQL {v}"));
            }
            client.batch_execute("begin isolation level repeatable read read only").await?;
            let snapshot: String = client.query_one("select pg_export_snapshot()", &[]).await?.get(0);
            for (table, n) in count_rows(&client).await? {
                m.counts.insert(format!("{db}.{table}"), n);
            }
            let mut cmd = pgtools::command(&self.cfg.postgres, &self.cfg.backup, "pg_dump", db)?;
            // Uncompressed: zstd compresses better and faster than pg_dump's zlib, and only once.
            cmd.arg("--format=custom").arg("--compress=0").arg(format!("--snapshot={snapshot}")).arg("--no-password");
            let reader = pgtools::ChildReader::spawn(cmd, &format!("pg_dump of {db}"))?;
            let entry = self.put_object(&m.id, &format!("{db}.dump"), reader).await?;
            client.batch_execute("commit").await?;
            m.objects.push(entry);
            m.databases.push(db.clone());
        }
        m.finished_at = chrono::Utc::now();
        self.write_manifest(&m).await?;
        Ok(m)
    }

    fn pick_dump<'a>(&self, m: &'a Manifest, from: Option<&str>) -> Result<&'a ObjectEntry> {
        if m.kind != BackupKind::Logical {
            return Err(Error::invalid_input(format!("backup {} is a {} backup, not a logical one", m.id, m.kind)));
        }
        let db = match from {
            Some(d) => d.to_string(),
            None if m.databases.len() == 1 => m.databases[0].clone(),
            None => {
                return Err(Error::invalid_input(format!(
                    "backup {} holds several databases ({}); name one with --from",
                    m.id,
                    m.databases.join(", ")
                )))
            }
        };
        m.objects.iter().find(|o| o.name == format!("{db}.dump")).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("backup {} has no dump of database {db} (it has {})", m.id, m.databases.join(", ")),
            )
        })
    }

    /// Restores the dump of `from` (default: the only database) of backup
    /// `id` into the new database `target`, then checks its row counts
    /// against the manifest. On any failure `target` is dropped again.
    pub async fn restore_logical(&self, id: &str, target: &str, from: Option<&str>) -> Result<BTreeMap<String, u64>> {
        let m = self.manifest(id).await?;
        let obj = self.pick_dump(&m, from)?.clone();
        let source_db = obj.name.trim_end_matches(".dump").to_string();
        if target.is_empty() || target.len() > 63 {
            return Err(Error::invalid_input(format!("`{target}` is not a database name")));
        }
        let admin = crate::postgres::connect(
            &self.backup_pg_config(&self.cfg.postgres.database),
            crate::postgres::ConnectTarget::Primary,
        )
        .await?;
        let exists = admin.query_opt("select 1 from pg_database where datname = $1", &[&target]).await?.is_some();
        if exists {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("database {target} already exists; restore into a new name (fwdb never overwrites a database)"),
            ));
        }
        admin
            .batch_execute(&format!("create database {}", quote_existing(target)))
            .await
            .map_err(super::db_error(format!("creating database {target}")))?;
        let result = self.restore_dump_into(&obj, target).await;
        let result = match result {
            Ok(()) => self.check_counts(&m, &source_db, target).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            let _ =
                admin.batch_execute(&format!("drop database if exists {} with (force)", quote_existing(target))).await;
        }
        result
    }

    async fn restore_dump_into(&self, obj: &ObjectEntry, target: &str) -> Result<()> {
        let mut cmd = pgtools::command(&self.cfg.postgres, &self.cfg.backup, "pg_restore", target)?;
        cmd.args(["--exit-on-error", "--single-transaction", "--no-password", "-d", target]);
        cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| Error::io("starting pg_restore", e))?;
        let stdin = child.stdin.take().expect("piped");
        let fed = self.get_object(obj, stdin).await;
        let fed = fed.map(drop);
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .map_err(|e| Error::new(ErrorKind::Internal, "pg_restore waiter").with_source(e))?
            .map_err(|e| Error::io("waiting for pg_restore", e))?;
        fed?;
        if !out.status.success() {
            return Err(Error::new(
                ErrorKind::Postgres,
                format!("pg_restore into {target} failed ({}):\n  {}", out.status, pgtools::tail(&out.stderr)),
            ));
        }
        Ok(())
    }

    async fn check_counts(&self, m: &Manifest, source_db: &str, target: &str) -> Result<BTreeMap<String, u64>> {
        let client =
            crate::postgres::connect(&self.backup_pg_config(target), crate::postgres::ConnectTarget::Primary).await?;
        let got = count_rows(&client).await?;
        let prefix = format!("{source_db}.");
        for (key, want) in m.counts.iter().filter(|(k, _)| k.starts_with(&prefix)) {
            let table = &key[prefix.len()..];
            let have = got.get(table).copied();
            if have != Some(*want) {
                return Err(Error::new(
                    ErrorKind::Validation,
                    format!(
                        "restored table {table} has {} rows; the manifest of {} records {want}",
                        have.map(|h| h.to_string()).unwrap_or("no".into()),
                        m.id
                    ),
                ));
            }
        }
        Ok(got)
    }

    pub(crate) async fn verify_logical(&self, m: &Manifest) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for db in &m.databases {
            let scratch = format!("fwdb_verify_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
            let counts = self.restore_logical(&m.id, &scratch, Some(db)).await?;
            let admin = crate::postgres::connect(
                &self.backup_pg_config(&self.cfg.postgres.database),
                crate::postgres::ConnectTarget::Primary,
            )
            .await?;
            admin.batch_execute(&format!("drop database if exists {} with (force)", quote_existing(&scratch))).await?;
            out.push(format!(
                "{db}: restored into scratch database {scratch}, {} tables, {} rows, counts match the manifest; dropped",
                counts.len(),
                counts.values().sum::<u64>()
            ));
        }
        Ok(out)
    }
}

/// Exact row counts of every user table, `schema.table` -> rows.
pub(crate) async fn count_rows(client: &tokio_postgres::Client) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for (s, t) in super::pg_counts::user_tables(client).await? {
        let n = super::pg_counts::count_table(client, &s, &t).await?;
        out.insert(format!("{s}.{t}"), n);
    }
    Ok(out)
}
