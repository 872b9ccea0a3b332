//! `roles apply`: the roles (cluster-wide, needs CREATEROLE) and then the
//! grants, ownership and default privileges of one database. The grants
//! alone ([`apply_grants`]) need only the admin login, so that every
//! migration run can follow itself with them.

use super::{
    configured_logins, memberships_among, privilege_matrix, Access, ConfiguredLogin, RoleSpec, ADMIN, SECURED_SCHEMAS,
};
use crate::config::{Config, Secret};
use crate::error::{Error, Result};
use crate::security::ident::{quote_existing, quote_ident};
use crate::security::scram::{scram_sha_256_verifier, verifier_matches};
use serde::Serialize;
use std::collections::BTreeSet;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

/// What `apply` did.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ApplyReport {
    pub database: String,
    pub roles_created: Vec<String>,
    pub passwords_set: Vec<String>,
    /// Login roles left without a password (no secret configured): they cannot log in.
    pub passwords_missing: Vec<String>,
    /// Memberships in the matrix's roles that it does not declare, revoked.
    pub memberships_revoked: Vec<String>,
    pub schemas: Vec<String>,
    /// The login services run as (`postgres.user`), a member of app_readwrite only.
    pub runtime: String,
    /// The login migrations run as (`postgres.admin.user`), a member of app_admin.
    pub migrator: String,
}

/// A role `apply` creates or brings in line.
struct Provision {
    name: String,
    attributes: &'static str,
    group: Option<&'static str>,
    password: Option<Secret>,
}

const CONFINED: &str = "NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT";

fn provisions(config: &Config, matrix: &[RoleSpec]) -> Result<Vec<Provision>> {
    let mut out = Vec::new();
    for r in matrix {
        let password = match r.login {
            true => config
                .security
                .login_password(r.name)
                .map_err(|e| Error::io(format!("security.{}_password_file: cannot read it", r.name), e))?,
            false => None,
        };
        let attributes = if r.login { "LOGIN NOCREATEDB" } else { "NOLOGIN NOCREATEDB" };
        out.push(Provision { name: r.name.to_string(), attributes, group: None, password });
    }
    let [runtime, admin]: [ConfiguredLogin; 2] = configured_logins(config)?;
    out.push(Provision {
        name: runtime.name,
        attributes: "LOGIN NOCREATEDB",
        group: Some(runtime.group),
        password: runtime.password,
    });
    // CREATEDB is the DBA's choice for the migrator (a logical restore creates a database).
    out.push(Provision { name: admin.name, attributes: "LOGIN", group: Some(admin.group), password: admin.password });
    Ok(out)
}

/// Errors of two sessions changing the same roles at once: try again.
fn is_race(e: &tokio_postgres::Error) -> bool {
    [
        SqlState::UNIQUE_VIOLATION,
        SqlState::INTERNAL_ERROR,
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::DUPLICATE_OBJECT,
    ]
    .iter()
    .any(|s| e.code() == Some(s))
}

/// Provisions the matrix: roles and memberships (cluster-wide), then the
/// grants of `postgres.database` ([`apply_grants`]). Idempotent; concurrent
/// runs retry on races. Needs a role with CREATEROLE.
pub async fn apply_roles(client: &Client, config: &Config) -> Result<ApplyReport> {
    let matrix = privilege_matrix();
    let roles = provisions(config, &matrix)?;
    can_create_roles(client).await?;
    let mut report = ApplyReport { database: config.postgres.database.clone(), ..Default::default() };
    for p in roles.iter().filter(|p| p.attributes.starts_with("LOGIN") && p.password.is_none() && p.group.is_none()) {
        report.passwords_missing.push(p.name.clone());
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        match cluster_part(client, &roles).await {
            Ok((created, revoked)) => {
                report.roles_created = created;
                report.memberships_revoked = revoked;
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
    report.passwords_set = roles.iter().filter(|p| p.password.is_some()).map(|p| p.name.clone()).collect();
    let grants = apply_grants(client, config).await?;
    report.schemas = grants.schemas;
    report.runtime = grants.runtime;
    report.migrator = grants.migrator;
    Ok(report)
}

async fn can_create_roles(client: &Client) -> Result<()> {
    let row = client
        .query_one(
            "SELECT current_user::text, rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await?;
    if row.get::<_, bool>(1) {
        return Ok(());
    }
    Err(Error::invalid_input(format!(
        "roles apply connects as `{}`, which cannot create roles: set security.admin_user (and its password) to a role with CREATEROLE, in practice the cluster's superuser",
        row.get::<_, String>(0)
    )))
}

async fn cluster_part(
    client: &Client,
    roles: &[Provision],
) -> std::result::Result<(Vec<String>, Vec<String>), tokio_postgres::Error> {
    let mut created = Vec::new();
    client.batch_execute("BEGIN").await?;
    for r in roles {
        let exists = client.query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&r.name]).await?.is_some();
        let q = quote_existing(&r.name);
        let attrs = format!("{} {CONFINED}", r.attributes);
        if exists {
            client.batch_execute(&format!("ALTER ROLE {q} {attrs}")).await?;
        } else {
            client.batch_execute(&format!("CREATE ROLE {q} {attrs}")).await?;
            created.push(r.name.clone());
        }
        if let Some(pw) = &r.password {
            // Only when it changed: a fresh salt every time would rewrite the role for nothing.
            let current: Option<String> = client
                .query_opt("SELECT rolpassword FROM pg_authid WHERE rolname = $1", &[&r.name])
                .await
                .ok()
                .flatten()
                .and_then(|row| row.get(0));
            if !current.as_deref().is_some_and(|v| verifier_matches(v, pw.expose())) {
                let verifier = scram_sha_256_verifier(pw.expose());
                client.batch_execute(&format!("ALTER ROLE {q} PASSWORD '{verifier}'")).await?;
            }
        }
    }
    let revoked = memberships(client, roles).await?;
    client.batch_execute("COMMIT").await?;
    Ok((created, revoked))
}

/// Grants each login its one group and revokes every other membership among
/// the matrix's roles (an old runtime login in app_admin, a grant by hand).
async fn memberships(client: &Client, roles: &[Provision]) -> std::result::Result<Vec<String>, tokio_postgres::Error> {
    let names: Vec<&str> = roles.iter().map(|r| r.name.as_str()).collect();
    let have = memberships_among(client, &names).await?;
    let want: BTreeSet<(String, String)> =
        roles.iter().filter_map(|r| r.group.map(|g| (g.to_string(), r.name.clone()))).collect();
    let mut revoked = Vec::new();
    for (g, u) in have.difference(&want) {
        client.batch_execute(&format!("REVOKE {} FROM {}", quote_existing(g), quote_existing(u))).await?;
        revoked.push(format!("{u} in {g}"));
    }
    for (g, u) in want.difference(&have) {
        client.batch_execute(&format!("GRANT {} TO {}", quote_existing(g), quote_existing(u))).await?;
    }
    Ok(revoked)
}

/// One object of a secured schema: (schema, name or signature, SQL kind, owner).
struct Object {
    schema: String,
    name: String,
    kind: &'static str,
    owner: String,
}

async fn objects(client: &Client, schemas: &[String]) -> Result<Vec<Object>> {
    let rows = client
        .query(
            "SELECT n.nspname::text, quote_ident(c.relname)::text, c.relkind::text, pg_get_userbyid(c.relowner)::text
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = ANY($1) AND c.relkind IN ('r','p','v','m','f','S')
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a','i'))
             UNION ALL
             SELECT n.nspname::text, quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')', 'F', pg_get_userbyid(p.proowner)::text
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = ANY($1) AND p.prokind IN ('f','p')
             ORDER BY 1, 2",
            &[&schemas],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let kind = match r.get::<_, String>(2).as_str() {
                "S" => "SEQUENCE",
                "v" => "VIEW",
                "m" => "MATERIALIZED VIEW",
                "f" => "FOREIGN TABLE",
                "F" => "ROUTINE",
                _ => "TABLE",
            };
            Object { schema: r.get(0), name: r.get(1), kind, owner: r.get(3) }
        })
        .collect())
}

/// The per-database part of `apply`: schemas and their objects owned by
/// app_admin, every grant the matrix does not declare revoked, the declared
/// ones granted, default privileges for what app_admin and the migrator
/// create later. Needs only membership in app_admin (the admin login), so
/// `fwdb migrate up` runs it after migrating; objects owned by someone the
/// connected role cannot act for are left to `roles apply` as a superuser,
/// and `roles check` names them.
pub async fn apply_grants(client: &Client, config: &Config) -> Result<ApplyReport> {
    let matrix = privilege_matrix();
    let [runtime, admin] = configured_logins(config)?;
    require_roles(client, &matrix, &[runtime.name.as_str(), admin.name.as_str()]).await?;
    let present: Vec<String> = client
        .query(
            "SELECT nspname::text FROM pg_namespace WHERE nspname = ANY($1) ORDER BY nspname",
            &[&SECURED_SCHEMAS.to_vec()],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let objects = objects(client, &present).await?;
    let acting: Vec<String> = client
        .query("SELECT r.rolname::text FROM pg_roles r WHERE pg_has_role(current_user, r.oid, 'MEMBER') OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Concurrent runs (several services migrating one database at once)
    // would collide on the same catalog rows: one at a time per database.
    let mut sql = String::from("BEGIN;\nSELECT pg_advisory_xact_lock(hashtext('fwdb roles apply_grants'));\n");
    let owners: Vec<(String, String)> = client
        .query(
            "SELECT nspname::text, pg_get_userbyid(nspowner)::text FROM pg_namespace WHERE nspname = ANY($1)",
            &[&present],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let migrator = quote_ident(&admin.name)?;
    let mut revoke_from = vec!["PUBLIC".to_string(), quote_ident(&runtime.name)?, migrator.clone()];
    for r in matrix.iter().filter(|r| r.name != ADMIN) {
        revoke_from.push(quote_ident(r.name)?);
    }
    let creators = [quote_ident(ADMIN)?, migrator.clone()];
    for c in &creators {
        // Per-schema default privileges only add to the global ones: the
        // EXECUTE that PUBLIC gets on every new function is revoked here.
        sql += &format!("ALTER DEFAULT PRIVILEGES FOR ROLE {c} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;\n");
    }
    for schema in &present {
        let owner = owners.iter().find(|(s, _)| s == schema).map(|(_, o)| o.as_str()).unwrap_or_default();
        let in_schema: Vec<&Object> = objects.iter().filter(|o| &o.schema == schema).collect();
        sql += &schema_sql(schema, owner, &in_schema, &acting, &matrix, &revoke_from, &creators)?;
    }
    sql += &history_sql(client, &admin.name, &acting).await?;
    sql += "COMMIT;\n";
    if let Err(e) = client.batch_execute(&sql).await {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(Error::from(e));
    }
    Ok(ApplyReport {
        database: config.postgres.database.clone(),
        schemas: present,
        runtime: runtime.name,
        migrator: admin.name,
        ..Default::default()
    })
}

/// The migration history belongs to the migrator, which writes it; the
/// runtime and read-only logins may read it (health and metrics report
/// pending migrations).
async fn history_sql(client: &Client, migrator: &str, acting: &[String]) -> Result<String> {
    let rows = client
        .query(
            "SELECT pg_get_userbyid(n.nspowner)::text, (SELECT pg_get_userbyid(c.relowner)::text FROM pg_class c WHERE c.oid = to_regclass('fwdb_migrations.history'))
             FROM pg_namespace n WHERE n.nspname = 'fwdb_migrations'",
            &[],
        )
        .await?;
    let Some(row) = rows.first() else { return Ok(String::new()) };
    let m = quote_ident(migrator)?;
    let mut sql = String::new();
    let (schema_owner, table_owner): (String, Option<String>) = (row.get(0), row.get(1));
    if schema_owner != migrator && acting.contains(&schema_owner) {
        sql += &format!("ALTER SCHEMA fwdb_migrations OWNER TO {m};\n");
    }
    if let Some(t) = table_owner {
        if t != migrator && acting.contains(&t) {
            sql += &format!("ALTER TABLE fwdb_migrations.history OWNER TO {m};\n");
        }
        sql += "GRANT SELECT ON fwdb_migrations.history TO app_readonly, app_readwrite;\n";
    }
    sql += "GRANT USAGE ON SCHEMA fwdb_migrations TO app_readonly, app_readwrite;\n";
    Ok(sql)
}

async fn require_roles(client: &Client, matrix: &[RoleSpec], logins: &[&str]) -> Result<()> {
    let mut names: Vec<&str> = matrix.iter().map(|r| r.name).collect();
    names.extend(logins.iter().copied());
    let found: BTreeSet<String> = client
        .query("SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1)", &[&names])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let missing: Vec<&str> = names.into_iter().filter(|n| !found.contains(*n)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::new(
        crate::error::ErrorKind::NotFound,
        format!(
            "roles of the matrix are missing ({}): run `fwdb roles apply` as a role with CREATEROLE first",
            missing.join(", ")
        ),
    ))
}

/// The statements for one schema.
fn schema_sql(
    schema: &str,
    owner: &str,
    objects: &[&Object],
    acting: &[String],
    matrix: &[RoleSpec],
    revoke_from: &[String],
    creators: &[String],
) -> Result<String> {
    let s = quote_ident(schema)?;
    let admin = quote_ident(ADMIN)?;
    let can_act_for = |o: &str| acting.iter().any(|a| a == o);
    let mut sql = String::new();
    // Ownership first: revoking from the migrator what it still owned would
    // take the owner's own privileges, and the new owner would inherit none.
    if owner != ADMIN && can_act_for(owner) {
        sql += &format!("ALTER SCHEMA {s} OWNER TO {admin};\n");
    }
    for o in objects.iter().filter(|o| o.owner != ADMIN && can_act_for(&o.owner)) {
        sql += &format!("ALTER {} {s}.{} OWNER TO {admin};\n", o.kind, o.name);
    }
    for g in revoke_from {
        sql += &format!(
            "REVOKE ALL ON SCHEMA {s} FROM {g};\nREVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {g};\n\
             REVOKE ALL ON ALL SEQUENCES IN SCHEMA {s} FROM {g};\nREVOKE ALL ON ALL ROUTINES IN SCHEMA {s} FROM {g};\n"
        );
        for c in creators {
            sql += &format!(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {c} IN SCHEMA {s} REVOKE ALL ON TABLES FROM {g};\n\
                 ALTER DEFAULT PRIVILEGES FOR ROLE {c} IN SCHEMA {s} REVOKE ALL ON SEQUENCES FROM {g};\n"
            );
        }
    }
    for r in matrix.iter().filter(|r| r.name != ADMIN && r.uses_schema(schema)) {
        let g = quote_ident(r.name)?;
        sql += &format!("GRANT USAGE ON SCHEMA {s} TO {g};\n");
        let access = r.access_to(schema);
        if access != Access::None {
            let t = access.table_privileges().into_iter().collect::<Vec<_>>().join(", ");
            let q = access.sequence_privileges().into_iter().collect::<Vec<_>>().join(", ");
            sql += &format!(
                "GRANT {t} ON ALL TABLES IN SCHEMA {s} TO {g};\nGRANT {q} ON ALL SEQUENCES IN SCHEMA {s} TO {g};\n"
            );
            for c in creators {
                sql += &format!(
                    "ALTER DEFAULT PRIVILEGES FOR ROLE {c} IN SCHEMA {s} GRANT {t} ON TABLES TO {g};\n\
                     ALTER DEFAULT PRIVILEGES FOR ROLE {c} IN SCHEMA {s} GRANT {q} ON SEQUENCES TO {g};\n"
                );
            }
        }
        for c in r.columns.iter().filter(|c| c.schema == schema) {
            if objects.iter().any(|o| o.kind == "TABLE" && o.name == c.table) {
                let cols = c.columns.iter().map(|c| quote_ident(c)).collect::<Result<Vec<_>>>()?.join(", ");
                sql += &format!("GRANT {} ({cols}) ON {s}.{} TO {g};\n", c.privilege, quote_ident(c.table)?);
            }
        }
    }
    // Tables the migrator creates belong to it until the next apply; app_admin gets all on them meanwhile.
    let m = &creators[1];
    sql += &format!(
        "ALTER DEFAULT PRIVILEGES FOR ROLE {m} IN SCHEMA {s} GRANT ALL ON TABLES TO {admin};\n\
         ALTER DEFAULT PRIVILEGES FOR ROLE {m} IN SCHEMA {s} GRANT ALL ON SEQUENCES TO {admin};\n"
    );
    Ok(sql)
}
