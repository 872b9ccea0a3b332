//! Configuration through the command line, TLS to the real stack, and the
//! rule that a secret never reaches any output.

use crate::helpers::{fwdb_command, run, TestApp};

#[tokio::test]
async fn a_bad_setting_exits_2_and_names_the_key_and_where_it_came_from() {
    let (code, _, err) = run(fwdb_command()
        .args(["config", "check"])
        .env("FWDB__POSTGRES__POOL__MIN_SIZE", "200")
        .env("FWDB__POSTGRES__POOL__MAX_SIZE", "10"));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "postgres.pool.min_size (env FWDB__POSTGRES__POOL__MIN_SIZE): min_size (200) is above max_size (10)"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn an_unknown_key_in_the_file_is_reported_with_its_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("fwdb.toml");
    std::fs::write(&file, "[postgres]\ndatabase = \"x\"\nconect_timeout = \"5s\"\n").expect("write");
    let (code, _, err) = run(fwdb_command().arg("--config").arg(&file).args(["config", "show"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("postgres.conect_timeout ({}:3): unknown key", file.display())), "{err}");
}

#[tokio::test]
async fn the_production_profile_refuses_the_development_defaults() {
    let (code, _, err) = run(fwdb_command().args(["--profile", "production", "config", "check"]));
    assert_eq!(code, 2);
    assert!(err.contains("requires verify-full"), "{err}");
    assert!(err.contains("trust authentication is refused"), "{err}");
}

#[tokio::test]
async fn config_show_gives_each_value_its_origin_in_json() {
    let app = TestApp::spawn().await;
    let (code, out, err) = run(app.fwdb().args(["--format", "json", "config", "show"]));
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).expect("JSON rows");
    let row = |key: &str| rows.iter().find(|r| r["key"] == key).cloned().unwrap_or_default();
    assert_eq!(row("postgres.database")["value"], app.pg_database.as_str());
    assert_eq!(row("postgres.database")["origin"], "env FWDB__POSTGRES__DATABASE");
    assert_eq!(row("postgres.pool.acquire_timeout")["origin"], "default");
    assert_eq!(row("postgres.password")["value"], fwdb::REDACTED);
}

#[tokio::test]
async fn verify_full_connects_with_the_stack_ca_over_tls_and_scram() {
    let app = TestApp::spawn().await;
    let client = fwdb::connect(&app.config.postgres, fwdb::ConnectTarget::Primary).await.expect("verify-full connects");
    let row = client
        .query_one("select ssl, client_dn from pg_stat_ssl where pid = pg_backend_pid()", &[])
        .await
        .expect("pg_stat_ssl");
    assert!(row.get::<_, bool>(0), "the connection is not encrypted");
    let dn: Option<String> = row.get(1);
    assert!(dn.unwrap_or_default().contains(&app.stack.info().app_user), "the client certificate was not presented");
    let admin = app.pg().await;
    let stored: String = admin
        .query_one("select rolpassword from pg_authid where rolname = $1", &[&app.stack.info().app_user])
        .await
        .expect("pg_authid")
        .get(0);
    assert!(stored.starts_with("SCRAM-SHA-256$"), "the password is not stored as SCRAM");
}

#[tokio::test]
async fn verify_full_refuses_a_server_signed_by_another_ca_and_says_so() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let other_ca = dir.path().join("other-ca.pem");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().expect("key");
    std::fs::write(&other_ca, params.self_signed(&key).expect("self-signed CA").pem()).expect("write CA");
    let mut cfg = app.config.postgres.clone();
    cfg.tls.ca_file = Some(other_ca);
    let err = fwdb::connect(&cfg, fwdb::ConnectTarget::Primary).await.expect_err("a wrong CA must not connect");
    assert!(err.to_string().contains("wrong CA"), "{err}");
    assert_eq!(err.kind(), fwdb::ErrorKind::Unavailable);
}

#[tokio::test]
async fn config_check_connect_finds_every_server_of_the_stack_healthy() {
    let app = TestApp::spawn().await;
    let (code, out, err) = run(app.fwdb().args(["--format", "json", "config", "check", "--connect"]));
    assert_eq!(code, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let servers = report["servers"].as_array().cloned().unwrap_or_default();
    assert_eq!(servers.len(), 4, "primary, two replicas and MongoDB: {out}");
    assert!(servers.iter().all(|s| s["healthy"] == true), "{out}");
}

#[tokio::test]
async fn config_check_connect_exits_1_when_a_server_is_unreachable() {
    let app = TestApp::spawn().await;
    let (code, out, _) =
        run(app.fwdb().args(["config", "check", "--connect"]).env("FWDB__POSTGRES__REPLICAS", "[\"127.0.0.1:1\"]"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("UNHEALTHY"), "{out}");
}

/// Every command that reads the configuration, at debug level, with a known
/// secret as the password: the secret must appear nowhere. (`fwdb dev env`
/// is left out on purpose: printing the settings is its job.)
#[tokio::test]
async fn a_known_secret_never_appears_in_any_output() {
    let app = TestApp::spawn().await;
    let secret = app.stack.info().app_password.clone();
    let dir = tempfile::tempdir().expect("temp dir");
    let pw_file = dir.path().join("mongo.pw");
    std::fs::write(&pw_file, format!("{secret}\n")).expect("write");
    let commands: Vec<Vec<&str>> = vec![
        vec!["config", "show"],
        vec!["--format", "json", "config", "show"],
        vec!["config", "check"],
        vec!["config", "check", "--connect"],
        vec!["--format", "json", "config", "check", "--connect"],
        vec!["migrate", "status"],
        vec!["--profile", "production", "config", "check"],
    ];
    for args in commands {
        let (_, out, err) = run(app
            .fwdb()
            .args(["-vv"])
            .args(&args)
            .env("FWDB_LOG", "debug")
            .env("FWDB__MONGO__USER", "someone")
            .env("FWDB__MONGO__PASSWORD_FILE", &pw_file)
            .env("FWDB__POSTGRES__REPLICAS", "[\"127.0.0.1:1\"]"));
        assert!(
            !out.contains(&secret) && !err.contains(&secret),
            "`fwdb {}` printed the secret:\n{out}\n{err}",
            args.join(" ")
        );
    }
}
