//! `fwdb roles apply|check` and the privilege matrix of architecture 9.1,
//! tried over the network (TLS verify-full + SCRAM) as every role.
//!
//! Roles are cluster-wide and the stack is shared: every test uses the same
//! role passwords (derived from the stack id), `apply` retries on races, and
//! the roles a test creates for itself have random names.

use crate::helpers::{run, TestApp};
use fwdb::Access;

/// The password every test gives login role `role` on this stack.
pub fn role_password(app: &TestApp, role: &str) -> String {
    format!("pw-{role}-{}", app.stack.info().id)
}

/// `FWDB__SECURITY__*`: admin = the stack's superuser over TCP, and the login roles' passwords.
pub fn security_env(app: &TestApp) -> Vec<(String, String)> {
    let info = app.stack.info();
    let mut env = vec![
        ("FWDB__SECURITY__ADMIN_USER".to_string(), info.superuser.clone()),
        ("FWDB__SECURITY__ADMIN_PASSWORD".to_string(), info.superuser_password.clone()),
    ];
    for r in fwdb::LOGIN_ROLES {
        env.push((format!("FWDB__SECURITY__{}_PASSWORD", r.to_uppercase()), role_password(app, r)));
    }
    env
}

/// The app's configuration with `[security]` filled as [`security_env`] does.
pub fn security_config(app: &TestApp) -> fwdb::Config {
    let mut c = app.config.clone();
    let info = app.stack.info();
    c.security.admin_user = Some(info.superuser.clone());
    c.security.admin_password = Some(fwdb::Secret::new(info.superuser_password.clone()));
    c.security.avatar_service_password = Some(fwdb::Secret::new(role_password(app, "avatar_service")));
    c.security.catalog_service_password = Some(fwdb::Secret::new(role_password(app, "catalog_service")));
    c.security.design_service_password = Some(fwdb::Secret::new(role_password(app, "design_service")));
    c
}

/// `roles apply` through the library.
pub async fn apply(app: &TestApp) -> fwdb::ApplyReport {
    let cfg = security_config(app);
    let admin = fwdb::connect_admin(&cfg).await.expect("admin connection over TLS + SCRAM");
    fwdb::apply_roles(&admin, &cfg).await.expect("roles apply")
}

fn roles_cmd(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    run(app.fwdb().envs(security_env(app)).args(args))
}

#[tokio::test]
async fn roles_apply_is_idempotent_and_check_then_passes() {
    let app = TestApp::migrated().await;
    for _ in 0..2 {
        let (code, out, err) = roles_cmd(&app, &["roles", "apply"]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("roles applied"), "{out}");
    }
    let (code, out, err) = roles_cmd(&app, &["--format", "json", "roles", "check"]);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["ok"], true, "{out}");
    // Passwords are stored as SCRAM-SHA-256.
    let pg = app.pg().await;
    for r in fwdb::LOGIN_ROLES {
        let pw: String =
            pg.query_one("SELECT rolpassword FROM pg_authid WHERE rolname = $1", &[&r]).await.unwrap().get(0);
        assert!(pw.starts_with("SCRAM-SHA-256$4096:"), "{r}: {pw}");
    }
    // The schemas belong to app_admin.
    let owners: Vec<String> = pg
        .query(
            "SELECT DISTINCT pg_get_userbyid(nspowner)::text FROM pg_namespace WHERE nspname = ANY($1)",
            &[&fwdb::SECURED_SCHEMAS.to_vec()],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(owners, vec!["app_admin".to_string()]);
}

#[tokio::test]
async fn two_applies_at_once_both_succeed() {
    let (a, b) = tokio::join!(TestApp::migrated(), TestApp::migrated());
    let (ra, rb) = tokio::join!(apply(&a), apply(&b));
    assert_eq!(ra.schemas.len(), 5);
    assert_eq!(rb.schemas.len(), 5);
}

#[tokio::test]
async fn roles_check_names_a_grant_added_by_hand_and_apply_removes_it() {
    let app = TestApp::migrated().await;
    apply(&app).await;
    let pg = app.pg().await;
    pg.batch_execute("GRANT DELETE ON catalog.items TO avatar_service; GRANT CREATE ON SCHEMA shared TO app_readwrite")
        .await
        .expect("grant by hand");
    let (code, out, err) = roles_cmd(&app, &["roles", "check"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("table catalog.items: avatar_service has DELETE"), "{out}");
    assert!(out.contains("schema shared: app_readwrite has CREATE"), "{out}");
    // A revoked grant is a difference too.
    pg.batch_execute("REVOKE SELECT ON shared.users FROM app_readonly").await.unwrap();
    let (code, out, _) = roles_cmd(&app, &["roles", "check"]);
    assert_eq!(code, 1);
    assert!(out.contains("table shared.users: app_readonly lacks SELECT"), "{out}");
    let (code, out, err) = roles_cmd(&app, &["roles", "apply"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = roles_cmd(&app, &["roles", "check"]);
    assert_eq!(code, 0, "apply must converge: {out}{err}");
}

#[tokio::test]
async fn tables_created_later_inherit_the_grants() {
    let app = TestApp::migrated().await;
    apply(&app).await;
    let pg = app.pg().await;
    let user = &app.stack.info().admin_user;
    // As the migrator (the admin login) and as app_admin, like a later migration would.
    pg.batch_execute(&format!(
        "SET ROLE {user}; CREATE TABLE design.later_by_migrator (id int); RESET ROLE;
         SET ROLE app_admin; CREATE TABLE catalog.later_by_admin (id int); RESET ROLE;"
    ))
    .await
    .expect("create tables");
    let cfg = security_config(&app);
    let admin = fwdb::connect_admin(&cfg).await.unwrap();
    let diffs = fwdb::check_roles(&admin, &cfg).await.unwrap();
    assert!(diffs.is_empty(), "{diffs:#?}");
    let has = |role: &str, table: &str, p: &str| {
        let (role, table, p) = (role.to_string(), table.to_string(), p.to_string());
        let pg = &pg;
        async move {
            pg.query_one("SELECT has_table_privilege($1, $2, $3)", &[&role, &table, &p])
                .await
                .unwrap()
                .get::<_, bool>(0)
        }
    };
    assert!(has("design_service", "design.later_by_migrator", "INSERT").await);
    assert!(has("app_readonly", "design.later_by_migrator", "SELECT").await);
    assert!(!has("app_readonly", "design.later_by_migrator", "INSERT").await);
    assert!(has("catalog_service", "catalog.later_by_admin", "UPDATE").await);
    assert!(!has("avatar_service", "catalog.later_by_admin", "SELECT").await);
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Select,
    Insert,
    Update,
    Delete,
    Truncate,
    Create,
    Drop,
}

const OPS: [Op; 7] = [Op::Select, Op::Insert, Op::Update, Op::Delete, Op::Truncate, Op::Create, Op::Drop];

/// (schema, table, a column to update)
const TABLES: [(&str, &str, &str); 5] = [
    ("shared", "users", "first_name"),
    ("avatar", "avatars", "name"),
    ("catalog", "items", "name"),
    ("design", "probe", "note"),
    ("audit", "log", "actor"),
];

fn statement(op: Op, schema: &str, table: &str, column: &str) -> String {
    let t = format!("{schema}.{table}");
    match op {
        // A column outside the user directory (column grants would admit count(*)).
        Op::Select => format!("SELECT {column} FROM {t}"),
        // Privileges are checked before constraints: a NOT NULL failure means INSERT was allowed.
        Op::Insert => format!("INSERT INTO {t} DEFAULT VALUES"),
        Op::Update => format!("UPDATE {t} SET {column} = {column}"),
        Op::Delete => format!("DELETE FROM {t}"),
        Op::Truncate => format!("TRUNCATE {t}"),
        Op::Create => format!("CREATE TABLE {schema}.matrix_probe_{} (x int)", std::process::id()),
        Op::Drop => format!("DROP TABLE {t}"),
    }
}

fn expected(access: Access, op: Op, schema: &str) -> bool {
    let audit = schema == "audit";
    match (access, op) {
        (Access::None, _) => false,
        (_, Op::Select) => true,
        (Access::Read, _) => false,
        (Access::ReadWrite, Op::Insert | Op::Update | Op::Delete) => true,
        (Access::ReadWrite, _) => false,
        // The owner can do everything, except changing or removing audit rows (append-only).
        (Access::Owner, Op::Update | Op::Delete | Op::Truncate) => !audit,
        (Access::Owner, _) => true,
    }
}

/// Runs `sql` in a transaction that is rolled back; `Ok` unless PostgreSQL
/// said "insufficient privilege" (42501), which is `Err(message)`.
async fn attempt(client: &tokio_postgres::Client, sql: &str) -> Result<(), String> {
    client.batch_execute("BEGIN").await.expect("begin");
    let r = client.batch_execute(sql).await;
    client.batch_execute("ROLLBACK").await.expect("rollback");
    match r {
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {
            Err(e.as_db_error().map(|d| d.message().to_string()).unwrap_or_default())
        }
        _ => Ok(()),
    }
}

#[tokio::test]
async fn every_role_can_do_exactly_what_the_matrix_allows_over_tls_and_scram() {
    let app = TestApp::migrated().await;
    apply(&app).await;
    let pg = app.pg().await;
    // design has no table yet: one made by app_admin, like a migration would, gets the default privileges.
    pg.batch_execute("SET ROLE app_admin; CREATE TABLE design.probe (id int, note text); RESET ROLE")
        .await
        .expect("design.probe");
    // audit.log needs a row for its append-only trigger to have something to refuse.
    pg.batch_execute("INSERT INTO shared.users (email, first_name, last_name) VALUES ('matrix@example.com', 'M', 'X')")
        .await
        .expect("a user");
    // The NOLOGIN group roles are tried through a login role of this test that is a member of it.
    let tag = format!("t{:x}", std::process::id() ^ (fastrand_u32() << 4));
    let mut logins: Vec<(String, String, fwdb::RoleSpec)> = Vec::new();
    let mut made = Vec::new();
    for spec in fwdb::privilege_matrix() {
        if spec.login {
            logins.push((spec.name.to_string(), role_password(&app, spec.name), spec));
        } else {
            let name = format!("{tag}_{}", spec.name);
            let pw = format!("pw-{name}");
            pg.batch_execute(&format!("CREATE ROLE {name} LOGIN PASSWORD '{pw}' IN ROLE {}", spec.name))
                .await
                .expect("member role");
            made.push(name.clone());
            logins.push((name, pw, spec));
        }
    }
    // The stack's own two logins, as services and migrations use them.
    let info = app.stack.info();
    let spec_of =
        |name: &str| fwdb::privilege_matrix().into_iter().find(|r| r.name == name).expect("a role of the matrix");
    logins.push((info.app_user.clone(), info.app_password.clone(), spec_of("app_readwrite")));
    logins.push((info.admin_user.clone(), info.admin_password.clone(), spec_of("app_admin")));
    let mut failures = Vec::new();
    for (login, pw, spec) in &logins {
        let mut cfg = app.config.postgres.clone();
        cfg.user = login.clone();
        cfg.password = Some(fwdb::Secret::new(pw.clone()));
        let client =
            fwdb::connect(&cfg, fwdb::ConnectTarget::Primary).await.unwrap_or_else(|e| panic!("{login} connects: {e}"));
        let ssl: bool =
            client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0);
        assert!(ssl, "{login}: not over TLS");
        // What a service may know of users: their id, email and deletion, nothing else.
        let directory = spec.access_to("shared") != Access::None || !spec.columns.is_empty();
        let got = attempt(&client, "SELECT id, email, deleted_at FROM shared.users").await;
        if got.is_ok() != directory {
            failures
                .push(format!("{} ({login}) reading the user directory: expected {directory}, got {got:?}", spec.name));
        }
        for (schema, table, column) in TABLES {
            for op in OPS {
                let want = expected(spec.access_to(schema), op, schema);
                let got = attempt(&client, &statement(op, schema, table, column)).await;
                if got.is_ok() != want {
                    failures.push(format!(
                        "{} ({login}) {op:?} on {schema}.{table}: expected {}, got {got:?}",
                        spec.name,
                        if want { "allowed" } else { "refused" }
                    ));
                }
            }
        }
    }
    for login in &made {
        let _ = pg.batch_execute(&format!("DROP ROLE IF EXISTS {login}")).await;
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

fn fastrand_u32() -> u32 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
}

#[tokio::test]
async fn the_production_profile_refuses_weak_sslmodes_and_non_scram_authentication() {
    let app = TestApp::spawn().await;
    for mode in ["disable", "prefer", "require", "verify-ca"] {
        let (code, out, err) =
            run(app.fwdb().args(["--profile", "production", "config", "check"]).env("FWDB__POSTGRES__TLS__MODE", mode));
        assert_ne!(code, 0, "{mode}: {out}{err}");
        assert!(format!("{out}{err}").contains("requires verify-full"), "{mode}: {out}{err}");
    }
    let (code, out, err) =
        run(app.fwdb().args(["--profile", "production", "config", "check"]).env_remove("FWDB__POSTGRES__PASSWORD"));
    assert_ne!(code, 0);
    assert!(format!("{out}{err}").contains("SCRAM"), "{out}{err}");
    let (code, out, err) = run(app
        .fwdb()
        .args(["--profile", "production", "config", "check"])
        .env("FWDB__MONGO__AUTH_MECHANISM", "SCRAM-SHA-1"));
    assert_ne!(code, 0);
    assert!(format!("{out}{err}").contains("requires SCRAM-SHA-256"), "{out}{err}");
}

#[tokio::test]
async fn roles_check_names_column_and_routine_grants_added_by_hand_and_apply_removes_them() {
    let app = TestApp::migrated().await;
    apply(&app).await;
    let pg = app.pg().await;
    pg.batch_execute(
        "GRANT SELECT (first_name) ON shared.users TO avatar_service; GRANT UPDATE (email) ON shared.users TO app_readonly;
         GRANT EXECUTE ON FUNCTION shared.set_updated_at() TO PUBLIC; REVOKE SELECT (email) ON shared.users FROM design_service",
    )
    .await
    .expect("grants by hand");
    let (code, out, err) = roles_cmd(&app, &["roles", "check"]);
    assert_eq!(code, 1, "{out}{err}");
    for expected in [
        "column shared.users.first_name: avatar_service has SELECT",
        "column shared.users.email: app_readonly has UPDATE",
        "column shared.users.email: design_service lacks SELECT",
        "routine shared.set_updated_at(): PUBLIC has EXECUTE",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
    let (code, out, err) = roles_cmd(&app, &["roles", "apply"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = roles_cmd(&app, &["roles", "check"]);
    assert_eq!(code, 0, "apply must converge: {out}{err}");
}

#[tokio::test]
async fn roles_check_says_when_the_audit_log_is_no_longer_append_only() {
    let app = TestApp::migrated().await;
    apply(&app).await;
    // What its owner could do: no grant shows it.
    app.pg().await.batch_execute("ALTER TABLE audit.log DISABLE TRIGGER log_append_only").await.expect("disable");
    let (code, out, err) = roles_cmd(&app, &["roles", "check"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("table audit.log: trigger log_append_only is disabled: the log is not append-only"), "{out}");
}

#[tokio::test]
async fn a_runtime_login_left_in_app_admin_is_moved_to_app_readwrite_by_apply() {
    let app = TestApp::migrated().await;
    // A login of this test's own, made as older fwdb versions made the runtime login: an admin that may create databases.
    let login = format!("t_rt_{:x}", fastrand_u32());
    let pg = app.pg().await;
    pg.batch_execute(&format!("CREATE ROLE {login} LOGIN CREATEDB PASSWORD 'pw-{login}' IN ROLE app_admin"))
        .await
        .expect("old-style login");
    let mut cfg = security_config(&app);
    cfg.postgres.user = login.clone();
    cfg.postgres.password = Some(fwdb::Secret::new(format!("pw-{login}")));
    let admin = fwdb::connect_admin(&cfg).await.expect("admin connection");
    let before = fwdb::check_roles(&admin, &cfg).await.expect("check");
    let text: Vec<String> = before.iter().map(|d| d.to_string()).collect();
    assert!(
        text.contains(&format!("role {login}: is a member of app_admin, which the matrix does not declare")),
        "{text:#?}"
    );
    assert!(text.contains(&format!("role {login}: has CREATEDB")), "{text:#?}");
    let report = fwdb::apply_roles(&admin, &cfg).await.expect("apply");
    assert_eq!(report.memberships_revoked, vec![format!("{login} in app_admin")]);
    let after = fwdb::check_roles(&admin, &cfg).await.expect("check");
    assert!(after.is_empty(), "{after:#?}");
    // And as that login: reads and writes, no DDL, no audit.
    let mut rt = cfg.postgres.clone();
    rt.tls.cert_file = None;
    rt.tls.key_file = None;
    let client = fwdb::connect(&rt, fwdb::ConnectTarget::Primary).await.expect("the runtime login connects");
    assert!(attempt(
        &client,
        "INSERT INTO shared.users (email, first_name, last_name) VALUES ('rt@example.com', 'R', 'T')"
    )
    .await
    .is_ok());
    assert!(attempt(&client, "TRUNCATE shared.users").await.is_err());
    assert!(attempt(&client, "CREATE TABLE catalog.nope (x int)").await.is_err());
    assert!(attempt(&client, "SELECT count(*) FROM audit.log").await.is_err());
    drop(client);
    let _ = pg.batch_execute(&format!("DROP ROLE IF EXISTS {login}")).await;
}

#[tokio::test]
async fn roles_apply_refuses_one_login_for_both_services_and_migrations() {
    let app = TestApp::migrated().await;
    let mut cfg = security_config(&app);
    cfg.postgres.admin.user = cfg.postgres.user.clone();
    let admin = fwdb::connect_admin(&cfg).await.expect("admin connection");
    let err = fwdb::apply_roles(&admin, &cfg).await.expect_err("one login for both jobs");
    assert!(err.to_string().contains("postgres.user and postgres.admin.user are both `fwdb_app`"), "{err}");
}

#[tokio::test]
async fn roles_apply_as_a_login_without_createrole_says_what_to_configure() {
    let app = TestApp::migrated().await;
    let (code, out, err) = run(app.fwdb().args(["roles", "apply"]));
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("roles apply connects as `fwdb_admin`, which cannot create roles: set security.admin_user"),
        "{err}"
    );
}
