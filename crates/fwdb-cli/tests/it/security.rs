//! Security (architecture 9): TLS failures that each say which (9.2), the
//! secret search across every command and the debug logs, and the hostile
//! corpus for identifiers that commands interpolate into SQL.

use crate::helpers::{run, TestApp};
use crate::roles::{role_password, security_env};
use fwdb_testkit::{Stack, StackOptions};

/// A private stack (primary only, no MongoDB): these tests change server files.
async fn private_stack() -> (Stack, String, fwdb::Config) {
    tokio::task::spawn_blocking(|| {
        let stack =
            Stack::start(StackOptions { replicas: 0, mongo: false, ..Default::default() }).expect("a private stack");
        let db = stack.create_database().expect("database");
        let cfg = stack.info().config(&db, &db, &[]).expect("config");
        (stack, db, cfg)
    })
    .await
    .expect("start")
}

async fn connect_err(cfg: &fwdb::PostgresConfig) -> String {
    match fwdb::connect(cfg, fwdb::ConnectTarget::Primary).await {
        Ok(_) => panic!("connected, but it should have failed"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn an_expired_server_certificate_and_a_wrong_host_name_each_say_so() {
    let (stack, _db, cfg) = private_stack().await;
    fwdb::connect(&cfg.postgres, fwdb::ConnectTarget::Primary).await.expect("verify-full connects before the faults");

    // Expired: right names, validity ended two days ago.
    stack.replace_server_cert(&["localhost", "127.0.0.1"], -2).expect("expired cert");
    let err = connect_err(&cfg.postgres).await;
    assert!(err.contains("the server's certificate has expired"), "{err}");
    assert!(!err.contains("wrong host name") && !err.contains("wrong CA"), "{err}");

    // Wrong host name: valid, signed by the right CA, but for another host.
    stack.replace_server_cert(&["db.example.invalid"], 30).expect("other-host cert");
    let err = connect_err(&cfg.postgres).await;
    assert!(err.contains("wrong host name"), "{err}");
    assert!(!err.contains("expired") && !err.contains("wrong CA"), "{err}");
    // verify-ca does not check the name: it connects.
    let mut ca_only = cfg.postgres.clone();
    ca_only.tls.mode = fwdb::SslMode::VerifyCa;
    fwdb::connect(&ca_only, fwdb::ConnectTarget::Primary).await.expect("verify-ca ignores the host name");
    drop(stack);
}

#[tokio::test]
async fn a_server_requiring_client_certificates_refuses_connections_without_a_valid_one() {
    let (stack, _db, cfg) = private_stack().await;
    let user = stack.info().app_user.clone();
    stack
        .prepend_hba(&[
            "hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-full",
            "host    all all 127.0.0.1/32 reject",
        ])
        .expect("pg_hba with clientcert=verify-full");

    // The stack's client certificate (CN = the app user) still works, over TLS + SCRAM.
    let c =
        fwdb::connect(&cfg.postgres, fwdb::ConnectTarget::Primary).await.expect("with the right client certificate");
    let dn: Option<String> =
        c.query_one("SELECT client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0);
    assert!(dn.unwrap_or_default().contains(&user));

    // No client certificate.
    let mut none = cfg.postgres.clone();
    none.tls.cert_file = None;
    none.tls.key_file = None;
    let err = connect_err(&none).await;
    assert!(err.contains("connection requires a valid client certificate"), "{err}");

    // A certificate for someone else: verify-full matches its CN against the user.
    let (cert, key) = stack.issue_client_cert("someone_else", 30).expect("cert");
    let mut other = cfg.postgres.clone();
    other.tls.cert_file = Some(cert);
    other.tls.key_file = Some(key);
    // PostgreSQL checks the CN after the password and then reports the
    // method's failure ("password authentication failed"): the server does not
    // say which; its log does ("certificate authentication failed").
    let err = connect_err(&other).await;
    assert!(err.contains("SQLSTATE 28P01"), "{err}");

    // An expired client certificate: the server refuses the handshake.
    let (cert, key) = stack.issue_client_cert(&user, -2).expect("expired cert");
    let mut expired = cfg.postgres.clone();
    expired.tls.cert_file = Some(cert);
    expired.tls.key_file = Some(key);
    let err = connect_err(&expired).await;
    assert!(err.contains("CertificateExpired"), "{err}");

    // Plain TCP without TLS is rejected by the hba.
    let mut plain = cfg.postgres.clone();
    plain.tls.mode = fwdb::SslMode::Disable;
    let err = connect_err(&plain).await;
    assert!(err.contains("rejects connection") && err.contains("no encryption"), "{err}");
    drop(stack);
}

/// Every command, with `-vv` and `FWDB_LOG=debug` (and one at trace), with known
/// secrets in every secret setting: none may appear in stdout or stderr.
/// Extends the list of `config::a_known_secret_never_appears_in_any_output`.
/// (`fwdb dev env` prints settings on purpose and is left out.)
#[tokio::test]
async fn no_command_prints_a_known_secret_even_at_debug_level() {
    let app = TestApp::migrated().await;
    crate::roles::apply(&app).await;
    let info = app.stack.info();
    let dir = tempfile::tempdir().expect("temp dir");
    let mongo_pw = dir.path().join("mongo.pw");
    let mongo_secret = "mongo-secret-Zq81x";
    std::fs::write(&mongo_pw, format!("{mongo_secret}\n")).unwrap();
    let passphrase = "backup-passphrase-Vv72k";
    let storage = format!("file://{}", dir.path().join("backups").display());
    let mut secrets = vec![
        info.app_password.clone(),
        info.superuser_password.clone(),
        mongo_secret.to_string(),
        passphrase.to_string(),
    ];
    secrets.extend(fwdb::LOGIN_ROLES.iter().map(|r| role_password(&app, r)));
    let wrong_admin_pw = "wrong-admin-pw-Jx55";

    let restore_dir = dir.path().join("restored").display().to_string();
    let no_stack = dir.path().join("no-stack").display().to_string();
    let commands: Vec<Vec<&str>> = vec![
        vec!["backup", "create", "--kind", "logical"],
        vec!["backup", "create", "--kind", "mongo"],
        vec!["backup", "prune", "--dry-run"],
        vec!["restore", "--latest", "--target-dir", &restore_dir, "--no-start"],
        vec!["check", "queries"],
        vec!["dev", "status", "--dir", &no_stack],
        vec!["config", "show"],
        vec!["--format", "json", "config", "show"],
        vec!["config", "check"],
        vec!["config", "check", "--connect"],
        vec!["--profile", "production", "config", "check"],
        vec!["migrate", "status"],
        vec!["migrate", "plan"],
        vec!["migrate", "up"],
        vec!["migrate", "verify"],
        vec!["check", "refs"],
        vec!["health"],
        vec!["metrics"],
        vec!["roles", "matrix"],
        vec!["roles", "apply"],
        vec!["--format", "json", "roles", "apply"],
        vec!["roles", "check"],
        vec!["--format", "json", "roles", "check"],
        vec!["audit", "tail"],
        vec!["--format", "json", "audit", "tail"],
        vec!["backup", "list"],
        vec!["backup", "status"],
        vec!["wal", "list"],
        vec!["up", "--once"],
    ];
    let check = |label: String, out: &str, err: &str, secrets: &[String]| {
        for s in secrets {
            assert!(
                !out.contains(s.as_str()) && !err.contains(s.as_str()),
                "`{label}` printed a secret:\n{out}\n{err}"
            );
        }
    };
    for args in &commands {
        let (code, out, err) = run(app
            .fwdb()
            .args(["-vv"])
            .args(args)
            .envs(security_env(&app))
            .env("FWDB_LOG", "debug")
            .env("FWDB__MONGO__USER", "someone")
            .env("FWDB__MONGO__PASSWORD_FILE", &mongo_pw)
            .env("FWDB__BACKUP__STORAGE", &storage)
            .env("FWDB__BACKUP__ENCRYPTION__PASSPHRASE", passphrase));
        check(args.join(" "), &out, &err, &secrets);
        // Not vacuous: the configuration loads and the commands that matter here work.
        if matches!(
            args.as_slice(),
            ["config", "check"]
                | ["roles", "apply"]
                | ["roles", "check"]
                | ["audit", "tail"]
                | ["backup", "create", "--kind", "logical"]
        ) {
            assert_eq!(code, 0, "`{}` failed:\n{out}\n{err}", args.join(" "));
        }
    }
    // The same at trace level for the commands that send passwords.
    for args in [vec!["roles", "apply"], vec!["roles", "check"]] {
        let (_, out, err) = run(app.fwdb().args(["-vv"]).args(&args).envs(security_env(&app)).env("FWDB_LOG", "trace"));
        check(format!("{} (trace)", args.join(" ")), &out, &err, &secrets);
    }
    // A refused password is not echoed either.
    let (code, out, err) = run(app
        .fwdb()
        .args(["-vv", "roles", "check"])
        .envs(security_env(&app))
        .env("FWDB__SECURITY__ADMIN_PASSWORD", wrong_admin_pw)
        .env("FWDB_LOG", "debug"));
    assert_eq!(code, 2, "{out}{err}");
    check("roles check, wrong admin password".into(), &out, &err, &[wrong_admin_pw.to_string()]);
    // And `config show` says the security secrets are set, redacted.
    let (_, out, _) = run(app.fwdb().args(["config", "show"]).envs(security_env(&app)));
    assert!(out.contains("security.admin_password") && out.contains(fwdb::REDACTED), "{out}");
}

/// Names that are not plain identifiers, including SQL injection attempts.
pub const HOSTILE_NAMES: [&str; 16] = [
    "x; DROP ROLE app_admin; --",
    "x\"; DROP TABLE audit.log; --",
    "x'; DROP TABLE audit.log; --",
    "postgres\" WITH SUPERUSER --",
    "Robert'); DROP TABLE shared.users;--",
    "a b",
    "",
    "pg_read_all_data",
    "app_admin\0",
    "$$; DROP SCHEMA audit CASCADE; $$",
    "\\x41",
    "x\u{202e}y",
    "UPPER",
    "t_1 OWNER TO postgres",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "--",
];

#[tokio::test]
async fn hostile_role_and_database_names_are_refused_by_every_command_and_api() {
    let app = TestApp::migrated().await;
    let before_roles: i64 = app.pg().await.query_one("SELECT count(*) FROM pg_roles", &[]).await.unwrap().get(0);
    for name in HOSTILE_NAMES.iter().filter(|n| !n.contains('\0')) {
        // --database of roles apply / check.
        for sub in ["apply", "check"] {
            let (code, out, err) =
                run(app.fwdb().envs(security_env(&app)).args(["roles", sub, &format!("--database={name}")]));
            assert_eq!(code, 2, "roles {sub} --database {name:?}: {out}{err}");
            assert!(err.contains("not an acceptable identifier"), "{name:?}: {err}");
        }
        // The migrator role (postgres.user) and the admin role come from the configuration.
        let (code, out, err) =
            run(app.fwdb().envs(security_env(&app)).env("FWDB__POSTGRES__USER", name).args(["roles", "apply"]));
        assert_ne!(code, 0, "postgres.user {name:?}: {out}{err}");
        let (code, out, err) =
            run(app.fwdb().envs(security_env(&app)).env("FWDB__SECURITY__ADMIN_USER", name).args(["roles", "apply"]));
        assert_eq!(code, 2, "security.admin_user {name:?}: {out}{err}");
        assert!(err.contains("security.admin_user"), "{err}");
    }
    // The library refuses them too, before any SQL.
    let cfg = crate::roles::security_config(&app);
    let admin = fwdb::connect_admin(&cfg).await.unwrap();
    for name in HOSTILE_NAMES {
        assert!(fwdb::validate_identifier(name).is_err(), "{name:?}");
        assert!(fwdb::quote_ident(name).is_err(), "{name:?}");
        let mut bad = cfg.clone();
        bad.postgres.user = name.to_string();
        let e = fwdb::apply_roles(&admin, &bad).await.expect_err(name);
        assert_eq!(e.kind(), fwdb::ErrorKind::Validation);
        let e = fwdb::check_roles(&admin, &bad).await.expect_err(name);
        assert_eq!(e.kind(), fwdb::ErrorKind::Validation);
    }
    let pg = app.pg().await;
    let after_roles: i64 = pg.query_one("SELECT count(*) FROM pg_roles", &[]).await.unwrap().get(0);
    assert!(after_roles >= before_roles);
    let tables: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE (schemaname, tablename) IN (('audit','log'), ('shared','users'))",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 2, "nothing dropped");
    let supers: Vec<String> = pg
        .query("SELECT rolname::text FROM pg_roles WHERE rolsuper", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(supers, vec![app.stack.info().superuser.clone()]);
}

/// Values (not identifiers) go through quote_literal or SCRAM verifiers: the
/// server must read back exactly what was sent.
#[tokio::test]
async fn hostile_values_survive_quoting_and_scram_verifiers_round_trip() {
    let app = TestApp::migrated().await;
    let pg = app.pg().await;
    let corpus = [
        "plain",
        "it's",
        "'; DROP TABLE audit.log; --",
        "\\'; SELECT 1; --",
        "$$ $q$ $$",
        "\"quoted\"",
        "back\\slash",
        "ünïcödé ✓",
        "line\nbreak",
        "tab\there",
        "%_*",
        "E'x'",
    ];
    for v in corpus {
        let lit = fwdb::quote_literal(v).unwrap();
        let got: String =
            pg.query_one(&format!("SELECT {lit}::text"), &[]).await.unwrap_or_else(|e| panic!("{v:?}: {e}")).get(0);
        assert_eq!(got, v);
    }
    assert!(fwdb::quote_literal("nul\0").is_err());
    // A login role whose password is hostile, set through a client-side SCRAM verifier, logs in over TLS.
    let role = format!("t_scram_{:x}", std::process::id());
    for pw in ["'; DROP ROLE postgres; --", "p\\a$$ss\"w'rd"] {
        let verifier = fwdb::scram_sha_256_verifier(pw);
        assert!(!verifier.contains(pw));
        pg.batch_execute(&format!("DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD '{verifier}'"))
            .await
            .unwrap();
        let mut cfg = app.config.postgres.clone();
        cfg.user = role.clone();
        cfg.password = Some(fwdb::Secret::new(pw));
        let r = fwdb::connect(&cfg, fwdb::ConnectTarget::Primary).await;
        assert!(r.is_ok(), "{pw:?}: {:?}", r.err().map(|e| e.to_string()));
    }
    pg.batch_execute(&format!("DROP ROLE IF EXISTS {role}")).await.unwrap();
}

#[tokio::test]
async fn security_secrets_come_from_the_environment_or_a_file_but_not_both() {
    let app = TestApp::migrated().await;
    let info = app.stack.info();
    let dir = tempfile::tempdir().expect("temp dir");
    let admin_file = dir.path().join("admin.pw");
    std::fs::write(&admin_file, format!("{}\n", info.superuser_password)).unwrap();
    // From a file: roles apply connects with it.
    let mut env = security_env(&app);
    env.retain(|(k, _)| k != "FWDB__SECURITY__ADMIN_PASSWORD");
    let (code, out, err) = run(app
        .fwdb()
        .envs(env.clone())
        .env("FWDB__SECURITY__ADMIN_PASSWORD_FILE", &admin_file)
        .args(["roles", "apply"]));
    assert_eq!(code, 0, "{out}{err}");
    // Both: refused, naming the key.
    let (code, out, err) = run(app
        .fwdb()
        .envs(security_env(&app))
        .env("FWDB__SECURITY__ADMIN_PASSWORD_FILE", &admin_file)
        .args(["config", "check"]));
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("security.admin_password_file") && err.contains("keep one"), "{err}");
    // A missing file.
    let (code, _, err) = run(app
        .fwdb()
        .envs(env)
        .env("FWDB__SECURITY__CATALOG_SERVICE_PASSWORD_FILE", "/nonexistent/pw")
        .args(["config", "check"]));
    assert_eq!(code, 2);
    assert!(err.contains("security.catalog_service_password_file") && err.contains("file not found"), "{err}");
    assert!(!err.contains(&info.superuser_password));
}

/// MongoDB (9.2): TLS and SCRAM-SHA-256 options reach the driver. The local
/// MongoDB-compatible server speaks neither TLS nor SCRAM, so the live part
/// only shows that TLS, once asked for, is never dropped for plaintext.
#[tokio::test]
async fn mongodb_tls_and_scram_sha_256_options_are_wired_through() {
    let app = TestApp::spawn().await;
    let info = app.stack.info();
    let mut m = app.config.mongo.clone();
    m.user = Some("svc".into());
    m.password = Some(fwdb::Secret::new("mongo-pw-Q3"));
    m.auth_mechanism = "SCRAM-SHA-256".into();
    m.auth_source = "admin".into();
    m.tls.enabled = true;
    m.tls.ca_file = Some(info.tls.ca_cert.clone());
    let o = fwdb::mongo_client_options(&m).await.expect("options");
    let cred = o.credential.clone().expect("a credential");
    assert_eq!(cred.mechanism, Some(mongodb::options::AuthMechanism::ScramSha256));
    assert_eq!(cred.source.as_deref(), Some("admin"));
    assert_eq!(cred.username.as_deref(), Some("svc"));
    match &o.tls {
        Some(mongodb::options::Tls::Enabled(t)) => {
            assert_eq!(t.ca_file_path.as_deref(), Some(info.tls.ca_cert.as_path()))
        }
        other => panic!("TLS not enabled: {other:?}"),
    }
    assert!(!format!("{o:?}").contains("mongo-pw-Q3"), "the driver options' Debug shows the password");
    m.auth_mechanism = "PLAIN-TEXT".into();
    assert!(fwdb::mongo_client_options(&m).await.is_err(), "an unknown mechanism is refused");

    // Live: the plaintext server cannot complete a TLS handshake, and the client does not fall back.
    let mut m = app.config.mongo.clone();
    m.tls.enabled = true;
    m.tls.ca_file = Some(info.tls.ca_cert.clone());
    let mut o = fwdb::mongo_client_options(&m).await.expect("options");
    o.server_selection_timeout = Some(std::time::Duration::from_secs(2));
    o.connect_timeout = Some(std::time::Duration::from_secs(2));
    let client = mongodb::Client::with_options(o).expect("client");
    let r = client.database("admin").run_command(mongodb::bson::doc! { "ping": 1 }).await;
    assert!(r.is_err(), "a TLS client must not talk to a plaintext server");
}
