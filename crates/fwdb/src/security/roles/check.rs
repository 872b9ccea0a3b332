//! `roles check`: the catalog compared with the matrix, role by role and
//! object by object: attributes, memberships, schema, table, sequence,
//! column and routine privileges, ownership, default privileges, and the
//! triggers that keep the audit log append-only.

use super::{
    configured_logins, memberships_among, privilege_matrix, Access, ConfiguredLogin, RoleSpec, ADMIN, SECURED_SCHEMAS,
};
use crate::config::Config;
use crate::error::Result;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use tokio_postgres::Client;

/// One way the catalog differs from the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, PartialOrd, Ord)]
pub struct RoleDifference {
    /// `role avatar_service`, `schema catalog`, `table catalog.items`, `column shared.users.email`, ...
    pub subject: String,
    pub message: String,
}

impl std::fmt::Display for RoleDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.subject, self.message)
    }
}

/// What the check compares against: the matrix and the two configured logins.
struct Expected {
    matrix: Vec<RoleSpec>,
    logins: [ConfiguredLogin; 2],
    /// Every role that may hold privileges here: the matrix but app_admin, the logins, PUBLIC.
    grantees: Vec<String>,
}

impl Expected {
    fn access(&self, grantee: &str, schema: &str) -> Access {
        self.matrix.iter().find(|r| r.name == grantee).map(|r| r.access_to(schema)).unwrap_or(Access::None)
    }
    fn uses_schema(&self, grantee: &str, schema: &str) -> bool {
        self.matrix.iter().find(|r| r.name == grantee).is_some_and(|r| r.uses_schema(schema))
    }
    fn column_privileges(&self, grantee: &str, schema: &str, table: &str, column: &str) -> BTreeSet<&'static str> {
        let Some(r) = self.matrix.iter().find(|r| r.name == grantee) else { return BTreeSet::new() };
        r.columns
            .iter()
            .filter(|c| c.schema == schema && c.table == table && c.columns.contains(&column))
            .map(|c| c.privilege)
            .collect()
    }
    fn migrator(&self) -> &str {
        &self.logins[1].name
    }
}

fn d(subject: impl Into<String>, message: impl Into<String>) -> RoleDifference {
    RoleDifference { subject: subject.into(), message: message.into() }
}

fn diff_sets(
    out: &mut Vec<RoleDifference>,
    subject: &str,
    role: &str,
    expected: &BTreeSet<&str>,
    actual: &BTreeSet<String>,
) {
    for p in actual.iter().filter(|p| !expected.contains(p.as_str())) {
        out.push(d(subject, format!("{role} has {p}, which the matrix does not grant")));
    }
    for p in expected.iter().filter(|p| !actual.contains(**p)) {
        out.push(d(subject, format!("{role} lacks {p}, which the matrix grants")));
    }
}

/// Compares the catalog with the matrix; an empty list means they agree.
pub async fn check_roles(client: &Client, config: &Config) -> Result<Vec<RoleDifference>> {
    let logins = configured_logins(config)?;
    let matrix = privilege_matrix();
    let mut grantees: Vec<String> = matrix.iter().filter(|r| r.name != ADMIN).map(|r| r.name.to_string()).collect();
    grantees.extend(logins.iter().map(|l| l.name.clone()));
    grantees.push("PUBLIC".into());
    let e = Expected { matrix, logins, grantees };
    let mut out = Vec::new();
    roles(client, &e, &mut out).await?;
    memberships(client, &e, &mut out).await?;
    let schemas = schemas(client, &e, &mut out).await?;
    relations(client, &e, &mut out).await?;
    columns(client, &e, &mut out).await?;
    routines(client, &e, &mut out).await?;
    default_privileges(client, &e, &schemas, &mut out).await?;
    audit_triggers(client, &mut out).await?;
    out.sort();
    out.dedup();
    Ok(out)
}

/// Existence, LOGIN and the attributes no role of ours may have; passwords
/// stored as SCRAM (readable by superusers only; skipped otherwise).
async fn roles(client: &Client, e: &Expected, out: &mut Vec<RoleDifference>) -> Result<()> {
    let mut wanted: Vec<(&str, bool)> = e.matrix.iter().map(|r| (r.name, r.login)).collect();
    wanted.extend(e.logins.iter().map(|l| (l.name.as_str(), true)));
    let names: Vec<&str> = wanted.iter().map(|(n, _)| *n).collect();
    let rows = client
        .query(
            "SELECT rolname::text, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls FROM pg_roles WHERE rolname = ANY($1)",
            &[&names],
        )
        .await?;
    let found: BTreeMap<String, &tokio_postgres::Row> = rows.iter().map(|r| (r.get::<_, String>(0), r)).collect();
    for (name, login) in &wanted {
        let Some(row) = found.get(*name) else {
            out.push(d(format!("role {name}"), "does not exist; run `fwdb roles apply`"));
            continue;
        };
        if row.get::<_, bool>(1) != *login {
            out.push(d(format!("role {name}"), format!("LOGIN is {}, the matrix says {login}", row.get::<_, bool>(1))));
        }
        // The migrator may create databases (a logical restore does); nobody else.
        let createdb_ok = *name == e.migrator();
        for (i, attr) in [(2, "SUPERUSER"), (3, "CREATEDB"), (4, "CREATEROLE"), (5, "REPLICATION"), (6, "BYPASSRLS")] {
            if row.get::<_, bool>(i) && !(i == 3 && createdb_ok) {
                out.push(d(format!("role {name}"), format!("has {attr}")));
            }
        }
    }
    if let Ok(rows) = client
        .query(
            "SELECT rolname::text, coalesce(rolpassword, '') FROM pg_authid WHERE rolname = ANY($1) AND rolcanlogin",
            &[&names],
        )
        .await
    {
        for row in rows {
            let (name, pw): (String, String) = (row.get(0), row.get(1));
            if pw.is_empty() {
                out.push(d(format!("role {name}"), "can log in but has no password (set security.<role>_password)"));
            } else if !pw.starts_with("SCRAM-SHA-256$") {
                out.push(d(format!("role {name}"), "password is not stored as SCRAM-SHA-256"));
            }
        }
    }
    Ok(())
}

/// The runtime login in app_readwrite, the migrator in app_admin, and no
/// other membership among our roles (someone granted app_admin by hand...).
async fn memberships(client: &Client, e: &Expected, out: &mut Vec<RoleDifference>) -> Result<()> {
    let mut names: Vec<&str> = e.matrix.iter().map(|r| r.name).collect();
    names.extend(e.logins.iter().map(|l| l.name.as_str()));
    let have = memberships_among(client, &names).await?;
    for (g, u) in &have {
        if !e.logins.iter().any(|l| &l.name == u && l.group == g.as_str()) {
            out.push(d(format!("role {u}"), format!("is a member of {g}, which the matrix does not declare")));
        }
    }
    for l in &e.logins {
        if !have.contains(&(l.group.to_string(), l.name.clone())) {
            out.push(d(
                format!("role {}", l.name),
                format!("is not a member of {} ({} is a member of it)", l.group, l.key),
            ));
        }
    }
    Ok(())
}

/// Schemas: owner, then USAGE/CREATE grants. Returns the schemas present.
async fn schemas(client: &Client, e: &Expected, out: &mut Vec<RoleDifference>) -> Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT n.nspname::text, pg_get_userbyid(n.nspowner)::text,
                    CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END, a.privilege_type
             FROM pg_namespace n LEFT JOIN LATERAL aclexplode(n.nspacl) a ON true WHERE n.nspname = ANY($1)",
            &[&SECURED_SCHEMAS.to_vec()],
        )
        .await?;
    let mut acl: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    for row in &rows {
        let schema: String = row.get(0);
        owners.insert(schema.clone(), row.get(1));
        if let (Some(g), Some(p)) = (row.get::<_, Option<String>>(2), row.get::<_, Option<String>>(3)) {
            acl.entry((schema, g)).or_default().insert(p);
        }
    }
    for (schema, owner) in &owners {
        if owner != ADMIN {
            out.push(d(format!("schema {schema}"), format!("is owned by {owner}, not app_admin")));
        }
        for g in &e.grantees {
            let want: BTreeSet<&str> = if e.uses_schema(g, schema) { ["USAGE"].into() } else { BTreeSet::new() };
            let have = acl.get(&(schema.clone(), g.clone())).cloned().unwrap_or_default();
            diff_sets(out, &format!("schema {schema}"), g, &want, &have);
        }
    }
    Ok(owners.into_keys().collect())
}

/// Tables, views and sequences: the grants of each grantee; app_admin's when it does not own them.
async fn relations(client: &Client, e: &Expected, out: &mut Vec<RoleDifference>) -> Result<()> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, c.relkind::text, pg_get_userbyid(c.relowner)::text,
                    CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END, a.privilege_type
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN LATERAL aclexplode(c.relacl) a ON true
             WHERE n.nspname = ANY($1) AND c.relkind IN ('r','p','v','m','f','S')",
            &[&SECURED_SCHEMAS.to_vec()],
        )
        .await?;
    let mut objs: BTreeMap<(String, String), (String, String)> = BTreeMap::new();
    let mut acl: BTreeMap<(String, String, String), BTreeSet<String>> = BTreeMap::new();
    for row in &rows {
        let key = (row.get::<_, String>(0), row.get::<_, String>(1));
        objs.insert(key.clone(), (row.get(2), row.get(3)));
        if let (Some(g), Some(p)) = (row.get::<_, Option<String>>(4), row.get::<_, Option<String>>(5)) {
            acl.entry((key.0, key.1, g)).or_default().insert(p);
        }
    }
    for ((schema, name), (kind, owner)) in &objs {
        let seq = kind == "S";
        let subject = format!("{} {schema}.{name}", if seq { "sequence" } else { "table" });
        let privs = |a: Access| if seq { a.sequence_privileges() } else { a.table_privileges() };
        // The owner's own privileges are implicit: a table the migrator just created is not a difference.
        for g in e.grantees.iter().filter(|g| *g != owner) {
            let have = acl.get(&(schema.clone(), name.clone(), g.clone())).cloned().unwrap_or_default();
            diff_sets(out, &subject, g, &privs(e.access(g, schema)), &have);
        }
        if owner != ADMIN {
            let have = acl.get(&(schema.clone(), name.clone(), ADMIN.to_string())).cloned().unwrap_or_default();
            diff_sets(out, &subject, ADMIN, &privs(Access::Owner), &have);
        }
    }
    Ok(())
}

/// Column privileges: exactly the matrix's column grants (a table-wide
/// grant shows on the table, not here).
async fn columns(client: &Client, e: &Expected, out: &mut Vec<RoleDifference>) -> Result<()> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, a.attname::text,
                    CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee)::text END, x.privilege_type
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                  LEFT JOIN LATERAL aclexplode(a.attacl) x ON true
             WHERE n.nspname = ANY($1) AND c.relkind IN ('r','p','v','m','f') AND a.attnum > 0 AND NOT a.attisdropped",
            &[&SECURED_SCHEMAS.to_vec()],
        )
        .await?;
    let mut acl: BTreeMap<(String, String, String, String), BTreeSet<String>> = BTreeMap::new();
    let mut cols: BTreeSet<(String, String, String)> = BTreeSet::new();
    for row in &rows {
        let key = (row.get::<_, String>(0), row.get::<_, String>(1), row.get::<_, String>(2));
        cols.insert(key.clone());
        if let (Some(g), Some(p)) = (row.get::<_, Option<String>>(3), row.get::<_, Option<String>>(4)) {
            acl.entry((key.0, key.1, key.2, g)).or_default().insert(p);
        }
    }
    for (schema, table, column) in &cols {
        let subject = format!("column {schema}.{table}.{column}");
        for g in &e.grantees {
            let have =
                acl.get(&(schema.clone(), table.clone(), column.clone(), g.clone())).cloned().unwrap_or_default();
            diff_sets(out, &subject, g, &e.column_privileges(g, schema, table, column), &have);
        }
    }
    Ok(())
}

/// Functions and procedures: owned by app_admin, executable by nobody else
/// (trigger functions run without EXECUTE; a SECURITY DEFINER one would
/// otherwise let anyone act as its owner).
async fn routines(client: &Client, e: &Expected, out: &mut Vec<RoleDifference>) -> Result<()> {
    let rows = client
        .query(
            "SELECT n.nspname::text || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', pg_get_userbyid(p.proowner)::text,
                    CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee)::text END, x.privilege_type
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                  LEFT JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) x ON true
             WHERE n.nspname = ANY($1) AND p.prokind IN ('f','p')",
            &[&SECURED_SCHEMAS.to_vec()],
        )
        .await?;
    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    let mut acl: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for row in &rows {
        let f: String = row.get(0);
        owners.insert(f.clone(), row.get(1));
        if let (Some(g), Some(p)) = (row.get::<_, Option<String>>(2), row.get::<_, Option<String>>(3)) {
            acl.entry((f, g)).or_default().insert(p);
        }
    }
    for (f, owner) in &owners {
        let subject = format!("routine {f}");
        if owner != ADMIN {
            out.push(d(&subject, format!("is owned by {owner}, not app_admin")));
        }
        for g in e.grantees.iter().filter(|g| *g != owner) {
            let have = acl.get(&(f.clone(), g.clone())).cloned().unwrap_or_default();
            diff_sets(out, &subject, g, &BTreeSet::new(), &have);
        }
    }
    Ok(())
}

/// Default privileges, per creator (app_admin and the migrator), schema and kind.
async fn default_privileges(
    client: &Client,
    e: &Expected,
    schemas: &[String],
    out: &mut Vec<RoleDifference>,
) -> Result<()> {
    let rows = client
        .query(
            "SELECT pg_get_userbyid(d.defaclrole)::text, n.nspname::text, d.defaclobjtype::text,
                    CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END, a.privilege_type
             FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace, aclexplode(d.defaclacl) a
             WHERE n.nspname = ANY($1) AND d.defaclobjtype IN ('r','S')",
            &[&SECURED_SCHEMAS.to_vec()],
        )
        .await?;
    let mut dacl: BTreeMap<(String, String, String, String), BTreeSet<String>> = BTreeMap::new();
    for row in &rows {
        dacl.entry((row.get(0), row.get(1), row.get(2), row.get(3))).or_default().insert(row.get(4));
    }
    let creators = [ADMIN.to_string(), e.migrator().to_string()];
    let mut all_grantees = e.grantees.clone();
    all_grantees.push(ADMIN.into());
    for schema in schemas {
        for c in &creators {
            for (kind, seq) in [("r", false), ("S", true)] {
                let subject =
                    format!("default privileges of {c} on {} in {schema}", if seq { "sequences" } else { "tables" });
                for g in &all_grantees {
                    let expected = match (g == ADMIN, c == ADMIN) {
                        (true, true) => Access::None,
                        (true, false) => Access::Owner,
                        _ => e.access(g, schema),
                    };
                    let want = if seq { expected.sequence_privileges() } else { expected.table_privileges() };
                    let have = dacl
                        .get(&(c.clone(), schema.clone(), kind.to_string(), g.clone()))
                        .cloned()
                        .unwrap_or_default();
                    diff_sets(out, &subject, g, &want, &have);
                }
            }
        }
        // Default privileges of anyone else that reach our roles.
        for ((c, s, kind, g), have) in &dacl {
            if s == schema && !creators.contains(c) && all_grantees.contains(g) {
                let kind = if kind == "S" { "sequences" } else { "tables" };
                diff_sets(out, &format!("default privileges of {c} on {kind} in {schema}"), g, &BTreeSet::new(), have);
            }
        }
    }
    Ok(())
}

/// The triggers that refuse UPDATE, DELETE and TRUNCATE on audit.log: its
/// owner could disable them, which no grant shows.
async fn audit_triggers(client: &Client, out: &mut Vec<RoleDifference>) -> Result<()> {
    let rows = client
        .query(
            "SELECT t.tgname::text, t.tgenabled::text FROM pg_trigger t
             WHERE t.tgrelid = to_regclass('audit.log') AND NOT t.tgisinternal AND t.tgfoid = to_regprocedure('audit.refuse_change()')",
            &[],
        )
        .await?;
    let present: bool = client.query_one("SELECT to_regclass('audit.log') IS NOT NULL", &[]).await?.get(0);
    if !present {
        return Ok(());
    }
    if rows.is_empty() {
        out.push(d("table audit.log", "has no trigger refusing changes: the log is not append-only"));
    }
    for row in rows.iter().filter(|r| r.get::<_, String>(1) == "D") {
        out.push(d(
            "table audit.log",
            format!("trigger {} is disabled: the log is not append-only", row.get::<_, String>(0)),
        ));
    }
    Ok(())
}
