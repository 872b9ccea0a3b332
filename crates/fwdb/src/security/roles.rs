//! The role and privilege matrix of architecture 9.1, `apply` (idempotent,
//! safe to run concurrently) and `check` (catalog against the matrix).
//!
//! Roles are cluster-wide; grants, ownership and default privileges are per
//! database (the configured `postgres.database`).

use super::ident::{quote_ident, validate_identifier};
use super::scram::scram_sha_256_verifier;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::postgres::{connect, ConnectTarget};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use tokio_postgres::Client;

/// The schemas whose privileges the matrix governs (architecture 7.1).
pub const SECURED_SCHEMAS: [&str; 5] = ["shared", "avatar", "catalog", "design", "audit"];
/// NOLOGIN roles that others are granted.
pub const GROUP_ROLES: [&str; 3] = ["app_readonly", "app_readwrite", "app_admin"];
/// Roles services log in as, each confined to its own schema.
pub const LOGIN_ROLES: [&str; 3] = ["avatar_service", "catalog_service", "design_service"];

const ADMIN: &str = "app_admin";
const TABLE_ALL: [&str; 7] = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"];
const SEQ_ALL: [&str; 3] = ["SELECT", "UPDATE", "USAGE"];

/// What a role may do in a schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    None,
    /// USAGE on the schema; SELECT on tables and sequences.
    Read,
    /// USAGE; SELECT, INSERT, UPDATE, DELETE on tables; SELECT, USAGE on sequences. No DDL, no TRUNCATE.
    ReadWrite,
    /// Owns the schema: migrations and maintenance.
    Owner,
}

impl Access {
    fn table_privileges(self) -> BTreeSet<&'static str> {
        match self {
            Access::None => BTreeSet::new(),
            Access::Read => ["SELECT"].into(),
            Access::ReadWrite => ["SELECT", "INSERT", "UPDATE", "DELETE"].into(),
            Access::Owner => TABLE_ALL.into(),
        }
    }
    fn sequence_privileges(self) -> BTreeSet<&'static str> {
        match self {
            Access::None => BTreeSet::new(),
            Access::Read => ["SELECT"].into(),
            Access::ReadWrite => ["SELECT", "USAGE"].into(),
            Access::Owner => SEQ_ALL.into(),
        }
    }
}

/// One role of the matrix.
#[derive(Debug, Clone, Serialize)]
pub struct RoleSpec {
    pub name: &'static str,
    pub login: bool,
    /// Access per schema of [`SECURED_SCHEMAS`], in that order.
    pub access: [(&'static str, Access); 5],
}

impl RoleSpec {
    pub fn access_to(&self, schema: &str) -> Access {
        self.access.iter().find(|(s, _)| *s == schema).map(|(_, a)| *a).unwrap_or(Access::None)
    }
}

/// The declared matrix (9.1). The audit schema is written only by the
/// audit trigger (SECURITY DEFINER); no application role can touch it.
pub fn privilege_matrix() -> Vec<RoleSpec> {
    use Access::*;
    let row = |sh, av, ca, de, au| [("shared", sh), ("avatar", av), ("catalog", ca), ("design", de), ("audit", au)];
    vec![
        RoleSpec { name: "app_readonly", login: false, access: row(Read, Read, Read, Read, None) },
        RoleSpec { name: "app_readwrite", login: false, access: row(ReadWrite, ReadWrite, ReadWrite, ReadWrite, None) },
        RoleSpec { name: "app_admin", login: false, access: row(Owner, Owner, Owner, Owner, Owner) },
        RoleSpec { name: "avatar_service", login: true, access: row(Read, ReadWrite, None, None, None) },
        RoleSpec { name: "catalog_service", login: true, access: row(Read, None, ReadWrite, None, None) },
        RoleSpec { name: "design_service", login: true, access: row(Read, None, None, ReadWrite, None) },
    ]
}

/// A connection as `security.admin_user` (default `postgres.user`) with
/// `security.admin_password`, over the configured TLS.
pub async fn connect_admin(config: &Config) -> Result<Client> {
    let mut pg = config.postgres.clone();
    if let Some(u) = &config.security.admin_user {
        pg.user = validate_identifier(u)?.to_string();
        pg.password = None;
    }
    if let Some(pw) = config
        .security
        .admin_password()
        .map_err(|e| Error::io("security.admin_password_file: cannot read it", e))?
    {
        pg.password = Some(pw);
    }
    connect(&pg, ConnectTarget::Primary).await
}

/// What `apply` did.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ApplyReport {
    pub database: String,
    pub roles_created: Vec<String>,
    pub passwords_set: Vec<String>,
    /// Login roles left without a password (no secret configured): they cannot log in.
    pub passwords_missing: Vec<String>,
    pub schemas: Vec<String>,
    /// The role migrations run as, made a member of app_admin.
    pub migrator: String,
}

fn sqlstate(e: &tokio_postgres::Error) -> Option<String> {
    e.code().map(|c| c.code().to_string())
}

/// Errors of two sessions changing the same roles at once: try again.
fn is_race(e: &tokio_postgres::Error) -> bool {
    matches!(sqlstate(e).as_deref(), Some("23505" | "XX000" | "40001" | "40P01" | "42710"))
}

/// Provisions the matrix: roles (cluster-wide), then ownership, grants and
/// default privileges in `postgres.database`, revoking anything else first,
/// in one transaction. Idempotent; concurrent runs retry on races.
pub async fn apply_roles(client: &Client, config: &Config) -> Result<ApplyReport> {
    let migrator = validate_identifier(&config.postgres.user)?.to_string();
    let matrix = privilege_matrix();
    let mut report = ApplyReport { database: config.postgres.database.clone(), migrator: migrator.clone(), ..Default::default() };
    let mut passwords = BTreeMap::new();
    for r in matrix.iter().filter(|r| r.login) {
        match config.security.login_password(r.name).map_err(|e| Error::io(format!("security.{}_password_file: cannot read it", r.name), e))? {
            Some(pw) => {
                passwords.insert(r.name, pw);
            }
            None => report.passwords_missing.push(r.name.to_string()),
        }
    }

    // Cluster-wide part, retried: another session may be creating the same roles.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match cluster_part(client, &matrix, &passwords, &migrator).await {
            Ok(created) => {
                report.roles_created = created;
                break;
            }
            Err(e) if attempt < 20 && is_race(&e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                tokio::time::sleep(std::time::Duration::from_millis(20 + fastrand::u64(0..100))).await;
            }
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(Error::from(e));
            }
        }
    }
    report.passwords_set = passwords.keys().map(|s| s.to_string()).collect();

    // Per-database part.
    let present: Vec<String> = client
        .query("SELECT nspname FROM pg_namespace WHERE nspname = ANY($1) ORDER BY nspname", &[&SECURED_SCHEMAS.to_vec()])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let objects = client
        .query(
            "SELECT n.nspname, c.relname, c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = ANY($1) AND c.relkind IN ('r','p','v','m','f','S')
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a','i'))
             ORDER BY 1, 2",
            &[&present],
        )
        .await?;
    let mut sql = String::from("BEGIN;\n");
    let admin = quote_ident(ADMIN)?;
    let creators: Vec<String> = if migrator == ADMIN { vec![admin.clone()] } else { vec![admin.clone(), quote_ident(&migrator)?] };
    for schema in &present {
        let s = quote_ident(schema)?;
        sql += &format!("ALTER SCHEMA {s} OWNER TO {admin};\n");
        for grantee in std::iter::once("PUBLIC".to_string()).chain(matrix.iter().filter(|r| r.name != ADMIN).map(|r| quote_ident(r.name)).collect::<Result<Vec<_>>>()?) {
            sql += &format!(
                "REVOKE ALL ON SCHEMA {s} FROM {grantee};\nREVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {grantee};\nREVOKE ALL ON ALL SEQUENCES IN SCHEMA {s} FROM {grantee};\n"
            );
            for c in &creators {
                sql += &format!(
                    "ALTER DEFAULT PRIVILEGES FOR ROLE {c} IN SCHEMA {s} REVOKE ALL ON TABLES FROM {grantee};\nALTER DEFAULT PRIVILEGES FOR ROLE {c} IN SCHEMA {s} REVOKE ALL ON SEQUENCES FROM {grantee};\n"
                );
            }
        }
        for row in objects.iter().filter(|o| o.get::<_, String>(0) == *schema) {
            let (name, kind): (String, String) = (row.get(1), row.get(2));
            let obj = format!("{s}.{}", quote_ident_any(&name));
            let what = match kind.as_str() {
                "S" => "SEQUENCE",
                "v" => "VIEW",
                "m" => "MATERIALIZED VIEW",
                "f" => "FOREIGN TABLE",
                _ => "TABLE",
            };
            sql += &format!("ALTER {what} {obj} OWNER TO {admin};\n");
        }
        for r in matrix.iter().filter(|r| r.name != ADMIN) {
            let access = r.access_to(schema);
            if access == Access::None {
                continue;
            }
            let g = quote_ident(r.name)?;
            let t = access.table_privileges().into_iter().collect::<Vec<_>>().join(", ");
            let q = access.sequence_privileges().into_iter().collect::<Vec<_>>().join(", ");
            sql += &format!("GRANT USAGE ON SCHEMA {s} TO {g};\nGRANT {t} ON ALL TABLES IN SCHEMA {s} TO {g};\nGRANT {q} ON ALL SEQUENCES IN SCHEMA {s} TO {g};\n");
            for c in &creators {
                sql += &format!(
                    "ALTER DEFAULT PRIVILEGES FOR ROLE {c} IN SCHEMA {s} GRANT {t} ON TABLES TO {g};\nALTER DEFAULT PRIVILEGES FOR ROLE {c} IN SCHEMA {s} GRANT {q} ON SEQUENCES TO {g};\n"
                );
            }
        }
        if migrator != ADMIN {
            // Tables a migration creates later belong to the migrator until the next apply; app_admin gets all on them meanwhile.
            let m = quote_ident(&migrator)?;
            sql += &format!(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {m} IN SCHEMA {s} GRANT ALL ON TABLES TO {admin};\nALTER DEFAULT PRIVILEGES FOR ROLE {m} IN SCHEMA {s} GRANT ALL ON SEQUENCES TO {admin};\n"
            );
        }
    }
    sql += "COMMIT;\n";
    if let Err(e) = client.batch_execute(&sql).await {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(Error::from(e));
    }
    report.schemas = present;
    Ok(report)
}

/// Quotes a name read from the catalog (any characters): it names an existing
/// object, so it is quoted, not validated.
fn quote_ident_any(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn cluster_part(
    client: &Client,
    matrix: &[RoleSpec],
    passwords: &BTreeMap<&'static str, crate::config::Secret>,
    migrator: &str,
) -> std::result::Result<Vec<String>, tokio_postgres::Error> {
    let mut created = Vec::new();
    client.batch_execute("BEGIN").await?;
    for r in matrix {
        let exists = client.query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&r.name]).await?.is_some();
        let q = quote_ident_any(r.name);
        let attrs = format!(
            "{} NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT",
            if r.login { "LOGIN" } else { "NOLOGIN" }
        );
        if exists {
            client.batch_execute(&format!("ALTER ROLE {q} {attrs}")).await?;
        } else {
            client.batch_execute(&format!("CREATE ROLE {q} {attrs}")).await?;
            created.push(r.name.to_string());
        }
        if let Some(pw) = passwords.get(r.name) {
            // Only when it changed: a fresh salt every time would rewrite the role for nothing.
            let current: Option<String> = client
                .query_opt("SELECT rolpassword FROM pg_authid WHERE rolname = $1", &[&r.name])
                .await
                .ok()
                .flatten()
                .and_then(|row| row.get(0));
            if !current.as_deref().is_some_and(|v| super::scram::verifier_matches(v, pw.expose())) {
                let verifier = scram_sha_256_verifier(pw.expose());
                client.batch_execute(&format!("ALTER ROLE {q} PASSWORD '{verifier}'")).await?;
            }
        }
    }
    let member = client
        .query_opt(
            "SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
             WHERE g.rolname = $1 AND u.rolname = $2",
            &[&ADMIN, &migrator],
        )
        .await?
        .is_some();
    if !member && migrator != ADMIN {
        client.batch_execute(&format!("GRANT {} TO {}", quote_ident_any(ADMIN), quote_ident_any(migrator))).await?;
    }
    client.batch_execute("COMMIT").await?;
    Ok(created)
}

/// One way the catalog differs from the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, PartialOrd, Ord)]
pub struct RoleDifference {
    /// `role avatar_service`, `schema catalog`, `table catalog.items`, `default privileges ...`
    pub subject: String,
    pub message: String,
}

impl std::fmt::Display for RoleDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.subject, self.message)
    }
}

fn diff_sets(out: &mut Vec<RoleDifference>, subject: &str, role: &str, expected: &BTreeSet<&str>, actual: &BTreeSet<String>) {
    for p in actual.iter().filter(|p| !expected.contains(p.as_str())) {
        out.push(RoleDifference { subject: subject.into(), message: format!("{role} has {p}, which the matrix does not grant") });
    }
    for p in expected.iter().filter(|p| !actual.contains(**p)) {
        out.push(RoleDifference { subject: subject.into(), message: format!("{role} lacks {p}, which the matrix grants") });
    }
}

/// Compares the catalog with the matrix; an empty list means they agree.
pub async fn check_roles(client: &Client, config: &Config) -> Result<Vec<RoleDifference>> {
    let migrator = validate_identifier(&config.postgres.user)?.to_string();
    let matrix = privilege_matrix();
    let names: Vec<&str> = matrix.iter().map(|r| r.name).collect();
    let mut out = Vec::new();
    let d = |subject: String, message: String| RoleDifference { subject, message };

    // Roles and their attributes.
    let rows = client
        .query(
            "SELECT rolname::text, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls FROM pg_roles WHERE rolname = ANY($1)",
            &[&names],
        )
        .await?;
    let found: BTreeMap<String, &tokio_postgres::Row> = rows.iter().map(|r| (r.get::<_, String>(0), r)).collect();
    for r in &matrix {
        let Some(row) = found.get(r.name) else {
            out.push(d(format!("role {}", r.name), "does not exist; run `fwdb roles apply`".into()));
            continue;
        };
        if row.get::<_, bool>(1) != r.login {
            out.push(d(format!("role {}", r.name), format!("LOGIN is {}, the matrix says {}", row.get::<_, bool>(1), r.login)));
        }
        for (i, attr) in [(2, "SUPERUSER"), (3, "CREATEDB"), (4, "CREATEROLE"), (5, "REPLICATION"), (6, "BYPASSRLS")] {
            if row.get::<_, bool>(i) {
                out.push(d(format!("role {}", r.name), format!("has {attr}")));
            }
        }
    }
    // Passwords: stored as SCRAM (readable by superusers only; skipped otherwise).
    if let Ok(rows) = client
        .query("SELECT rolname::text, coalesce(rolpassword, '') FROM pg_authid WHERE rolname = ANY($1) AND rolcanlogin", &[&names])
        .await
    {
        for row in rows {
            let (name, pw): (String, String) = (row.get(0), row.get(1));
            if pw.is_empty() {
                out.push(d(format!("role {name}"), "can log in but has no password (set security.<role>_password)".into()));
            } else if !pw.starts_with("SCRAM-SHA-256$") {
                out.push(d(format!("role {name}"), "password is not stored as SCRAM-SHA-256".into()));
            }
        }
    }
    // Membership of the migrator in app_admin.
    if migrator != ADMIN {
        let member = client
            .query_opt(
                "SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE g.rolname = $1 AND u.rolname = $2",
                &[&ADMIN, &migrator],
            )
            .await?
            .is_some();
        if !member {
            out.push(d(format!("role {migrator}"), "is not a member of app_admin (it runs the migrations)".into()));
        }
    }
    // Every other membership in our roles is a difference too (someone granted app_admin by hand...).
    let members = client
        .query(
            "SELECT g.rolname::text, u.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
             WHERE g.rolname = ANY($1) AND u.rolname = ANY($1)",
            &[&names],
        )
        .await?;
    for row in members {
        let (g, u): (String, String) = (row.get(0), row.get(1));
        out.push(d(format!("role {u}"), format!("is a member of {g}, which the matrix does not declare")));
    }

    let mut grantees: Vec<String> = matrix.iter().filter(|r| r.name != ADMIN).map(|r| r.name.to_string()).collect();
    grantees.push("PUBLIC".into());
    let expected_for = |grantee: &str, schema: &str| -> Access {
        matrix.iter().find(|r| r.name == grantee).map(|r| r.access_to(schema)).unwrap_or(Access::None)
    };

    // Schemas: owner, then USAGE/CREATE grants.
    let rows = client
        .query(
            "SELECT n.nspname::text, pg_get_userbyid(n.nspowner)::text,
                    CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END, a.privilege_type
             FROM pg_namespace n LEFT JOIN LATERAL aclexplode(n.nspacl) a ON true WHERE n.nspname = ANY($1)",
            &[&SECURED_SCHEMAS.to_vec()],
        )
        .await?;
    let mut schema_acl: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let mut schema_owner: BTreeMap<String, String> = BTreeMap::new();
    for row in &rows {
        let schema: String = row.get(0);
        schema_owner.insert(schema.clone(), row.get(1));
        if let (Some(g), Some(p)) = (row.get::<_, Option<String>>(2), row.get::<_, Option<String>>(3)) {
            schema_acl.entry((schema, g)).or_default().insert(p);
        }
    }
    for (schema, owner) in &schema_owner {
        if owner != ADMIN {
            out.push(d(format!("schema {schema}"), format!("is owned by {owner}, not app_admin")));
        }
        for g in &grantees {
            let want: BTreeSet<&str> = if expected_for(g, schema) == Access::None { BTreeSet::new() } else { ["USAGE"].into() };
            let have = schema_acl.get(&(schema.clone(), g.clone())).cloned().unwrap_or_default();
            diff_sets(&mut out, &format!("schema {schema}"), g, &want, &have);
        }
    }

    // Tables and sequences.
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
        for g in &grantees {
            let have = acl.get(&(schema.clone(), name.clone(), g.clone())).cloned().unwrap_or_default();
            diff_sets(&mut out, &subject, g, &privs(expected_for(g, schema)), &have);
        }
        if owner != ADMIN {
            let have = acl.get(&(schema.clone(), name.clone(), ADMIN.to_string())).cloned().unwrap_or_default();
            diff_sets(&mut out, &subject, ADMIN, &privs(Access::Owner), &have);
        }
    }

    // Default privileges, per creator (app_admin and the migrator), schema and kind.
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
    let mut creators = vec![ADMIN.to_string()];
    if migrator != ADMIN {
        creators.push(migrator.clone());
    }
    let mut all_grantees = grantees.clone();
    all_grantees.push(ADMIN.into());
    for schema in schema_owner.keys() {
        for c in &creators {
            for (kind, seq) in [("r", false), ("S", true)] {
                let subject = format!("default privileges of {c} on {} in {schema}", if seq { "sequences" } else { "tables" });
                for g in &all_grantees {
                    let expected = if g == ADMIN {
                        if c == ADMIN { Access::None } else { Access::Owner }
                    } else {
                        expected_for(g, schema)
                    };
                    let want = if seq { expected.sequence_privileges() } else { expected.table_privileges() };
                    let have = dacl.get(&(c.clone(), schema.clone(), kind.to_string(), g.clone())).cloned().unwrap_or_default();
                    diff_sets(&mut out, &subject, g, &want, &have);
                }
            }
        }
        // Default privileges of anyone else that reach our roles.
        for ((c, s, kind, g), have) in &dacl {
            if s == schema && !creators.contains(c) && all_grantees.contains(g) {
                let kind = if kind == "S" { "sequences" } else { "tables" };
                diff_sets(&mut out, &format!("default privileges of {c} on {kind} in {schema}"), g, &BTreeSet::new(), have);
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_names_every_role_once_and_confines_services() {
        let m = privilege_matrix();
        let names: BTreeSet<_> = m.iter().map(|r| r.name).collect();
        assert_eq!(names.len(), 6);
        for r in &m {
            validate_identifier(r.name).unwrap();
            assert_eq!(r.access_to("audit") == Access::None, r.name != ADMIN);
        }
        let av = m.iter().find(|r| r.name == "avatar_service").unwrap();
        assert_eq!(av.access_to("catalog"), Access::None);
        assert_eq!(av.access_to("shared"), Access::Read);
        assert!(!Access::ReadWrite.table_privileges().contains("TRUNCATE"));
    }
}
