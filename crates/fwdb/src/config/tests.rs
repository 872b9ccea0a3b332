//! The loader, without any server: layers, origins, bad input, production.

use super::*;
use crate::ErrorKind;
use std::time::Duration;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(toml: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(DEFAULT_FILE), toml).expect("write fwdb.toml");
        Fixture { dir }
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write file");
        p
    }

    fn load(&self, profile: Option<Profile>, env: &[(&str, &str)]) -> Result<Config> {
        Config::load(LoadOptions {
            file: None,
            profile,
            env: Some(env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            dir: Some(self.dir.path().to_path_buf()),
        })
    }
}

fn problems(e: &Error) -> Vec<String> {
    e.config_problems().iter().map(ToString::to_string).collect()
}

#[test]
fn with_no_file_and_no_environment_the_architecture_defaults_apply() {
    let cfg = Fixture::new("").load(None, &[]).unwrap();
    assert_eq!(cfg.profile, Profile::Development);
    assert_eq!(cfg.postgres.pool.min_size, 10);
    assert_eq!(cfg.postgres.pool.max_size, 100);
    assert_eq!(cfg.postgres.pool.acquire_timeout, Duration::from_secs(30));
    assert_eq!(cfg.origin_of("postgres.pool.max_size"), "default");
}

#[test]
fn the_file_then_the_profile_then_the_environment_each_override_the_last() {
    let f = Fixture::new(
        "[postgres]\ndatabase = \"from_file\"\nuser = \"file_user\"\n[postgres.pool]\nmax_size = 40\n\n[staging.postgres]\ndatabase = \"from_profile\"\n",
    );
    let cfg = f.load(Some(Profile::Staging), &[("FWDB__POSTGRES__POOL__MAX_SIZE", "50")]).unwrap();
    assert_eq!(cfg.postgres.user, "file_user");
    assert_eq!(cfg.postgres.database, "from_profile");
    assert_eq!(cfg.postgres.pool.max_size, 50);
    assert!(cfg.origin_of("postgres.user").ends_with("fwdb.toml:3"), "{}", cfg.origin_of("postgres.user"));
    assert!(
        cfg.origin_of("postgres.database").ends_with("fwdb.toml:8 [staging]"),
        "{}",
        cfg.origin_of("postgres.database")
    );
    assert_eq!(cfg.origin_of("postgres.pool.max_size"), "env FWDB__POSTGRES__POOL__MAX_SIZE");
}

#[test]
fn the_profile_comes_from_fwdb_profile_when_no_flag_is_given() {
    let f = Fixture::new("[staging.postgres]\ndatabase = \"s\"\n");
    let cfg = f.load(None, &[("FWDB_PROFILE", "staging")]).unwrap();
    assert_eq!((cfg.profile, cfg.postgres.database.as_str()), (Profile::Staging, "s"));
    let err = f.load(None, &[("FWDB_PROFILE", "prod")]).unwrap_err();
    assert!(problems(&err)[0].contains("env FWDB_PROFILE"), "{err}");
}

#[test]
fn hosts_and_lists_can_be_given_in_the_environment() {
    let f = Fixture::new("");
    let cfg = f
        .load(None, &[("FWDB__POSTGRES__PRIMARY", "db1:5433"), ("FWDB__POSTGRES__REPLICAS", "[\"r1:1\", \"r2:2\"]")])
        .unwrap();
    assert_eq!(cfg.postgres.primary, vec![PgHost::new("db1", 5433)]);
    assert_eq!(cfg.postgres.replicas.len(), 2);
}

#[test]
fn an_unknown_key_is_named_with_its_file_and_line() {
    let err = Fixture::new("[postgres.pool]\nmax_size = 5\nmax_sise = 6\n").load(None, &[]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    let p = &err.config_problems()[0];
    assert_eq!(p.key, "postgres.pool.max_sise");
    assert!(p.origin.ends_with("fwdb.toml:3"), "{p}");
    assert_eq!(p.message, "unknown key");
}

#[test]
fn an_unknown_key_in_the_environment_names_the_variable() {
    let err = Fixture::new("").load(None, &[("FWDB__POSTGRES__POOL__MAXSIZE", "5")]).unwrap_err();
    assert!(
        problems(&err)
            .iter()
            .any(|p| p.contains("postgres.pool.maxsize (env FWDB__POSTGRES__POOL__MAXSIZE): unknown key")),
        "{err}"
    );
}

#[test]
fn a_typo_in_an_inactive_profile_is_reported_too() {
    let err = Fixture::new("[production.postgres]\ndatabse = \"x\"\n").load(None, &[]).unwrap_err();
    assert!(problems(&err)[0].contains("databse"), "{err}");
    assert!(problems(&err)[0].contains("[production]"), "{err}");
}

#[test]
fn min_above_max_is_refused_naming_both() {
    let err = Fixture::new("[postgres.pool]\nmin_size = 20\nmax_size = 5\n").load(None, &[]).unwrap_err();
    let p = &err.config_problems()[0];
    assert_eq!(p.key, "postgres.pool.min_size");
    assert!(p.origin.ends_with("fwdb.toml:2"));
    assert!(p.message.contains("min_size (20) is above max_size (5)"));
}

#[test]
fn sharing_more_than_half_of_a_pool_is_refused_when_asked_and_cut_when_defaulted() {
    let err = Fixture::new("[postgres.pool]\nmin_size = 1\nmax_size = 8\nmultiplex = 5\n").load(None, &[]).unwrap_err();
    let p = &err.config_problems()[0];
    assert_eq!(p.key, "postgres.pool.multiplex");
    assert!(p.origin.ends_with("fwdb.toml:4"), "{}", p.origin);
    assert!(p.message.contains("multiplex (5) is above half of max_size (8)"), "{}", p.message);
    let ok = Fixture::new("[postgres.pool]\nmin_size = 1\nmax_size = 8\nmultiplex = 4\n")
        .load(None, &[])
        .expect("half is allowed");
    assert_eq!(ok.postgres.pool.shared_connections(), 4);
    let small = Fixture::new("[postgres.pool]\nmin_size = 1\nmax_size = 5\n")
        .load(None, &[])
        .expect("the default fits any pool");
    assert_eq!(small.postgres.pool.multiplex, 8);
    assert_eq!(small.postgres.pool.shared_connections(), 2);
    let off = Fixture::new("").load(None, &[("FWDB__POSTGRES__POOL__MULTIPLEX", "0")]).expect("0 turns it off");
    assert_eq!(off.postgres.pool.shared_connections(), 0);
}

#[test]
fn a_zero_slow_read_or_pipeline_depth_is_refused_naming_the_key() {
    let err = Fixture::new("[postgres.pool]\nslow_read = \"0s\"\npipeline_depth = 0\n").load(None, &[]).unwrap_err();
    let keys: Vec<&str> = err.config_problems().iter().map(|p| p.key.as_str()).collect();
    assert!(keys.contains(&"postgres.pool.slow_read"), "{keys:?}");
    assert!(keys.contains(&"postgres.pool.pipeline_depth"), "{keys:?}");
    let ok =
        Fixture::new("[postgres.pool]\nslow_read = \"20ms\"\npipeline_depth = 4\n").load(None, &[]).expect("valid");
    assert_eq!(ok.postgres.pool.slow_read, std::time::Duration::from_millis(20));
    assert_eq!(ok.postgres.pool.pipeline_depth, 4);
}

#[test]
fn a_wrong_type_names_the_key_and_what_was_expected() {
    let err = Fixture::new("").load(None, &[("FWDB__POSTGRES__POOL__MAX_SIZE", "lots")]).unwrap_err();
    let p = &err.config_problems()[0];
    assert_eq!(p.key, "postgres.pool.max_size");
    assert_eq!(p.origin, "env FWDB__POSTGRES__POOL__MAX_SIZE");
    let err = Fixture::new("[postgres]\nconnect_timeout = \"soon\"\n").load(None, &[]).unwrap_err();
    assert!(err.config_problems()[0].message.contains("not a duration"), "{err}");
    let err = Fixture::new("[postgres]\nprimary = \"db:70000\"\n").load(None, &[]).unwrap_err();
    assert_eq!(err.config_problems()[0].key, "postgres.primary");
}

#[test]
fn a_bad_element_of_a_list_in_the_file_is_named_with_the_file_and_its_line() {
    let err = Fixture::new("[postgres]\nreplicas = [\"db1:5432\", 7]\n").load(None, &[]).unwrap_err();
    let p = &err.config_problems()[0];
    assert_eq!(p.key, "postgres.replicas[1]");
    assert!(p.origin.ends_with("fwdb.toml:2"), "{p}");
    assert!(p.message.contains("invalid type"), "{p}");
    let err = Fixture::new("[mongo]\nhosts = [\n  \"db5:27017\",\n  \"db6:27017\",\n  false,\n]\n")
        .load(None, &[])
        .unwrap_err();
    let p = &err.config_problems()[0];
    assert_eq!(p.key, "mongo.hosts[2]");
    assert!(p.origin.ends_with("fwdb.toml:5"), "{p}");
    let err = Fixture::new("[staging.postgres]\nreplicas = [\"db1:5432\", \"db2:0\"]\n")
        .load(Some(Profile::Staging), &[])
        .unwrap_err();
    assert!(problems(&err)[0].starts_with("postgres.replicas[1] ("), "{err}");
    assert!(problems(&err)[0].contains("fwdb.toml:2 [staging]"), "{err}");
}

#[test]
fn a_bad_element_of_a_list_in_the_environment_names_the_variable() {
    let f = Fixture::new("[postgres]\nreplicas = [\"db1:5432\"]\n");
    let err = f.load(None, &[("FWDB__POSTGRES__REPLICAS", "[\"db1:5432\", 7]")]).unwrap_err();
    let p = &err.config_problems()[0];
    assert_eq!((p.key.as_str(), p.origin.as_str()), ("postgres.replicas[1]", "env FWDB__POSTGRES__REPLICAS"), "{p}");
}

#[test]
fn unknown_keys_inside_lists_are_written_like_serde_paths() {
    assert_eq!(ignored_key("backup.targets.1.bucket"), "backup.targets[1].bucket");
    assert_eq!(ignored_key("a.b.0.1"), "a.b[0][1]");
    assert_eq!(ignored_key("a.?.b"), "a.b");
    assert_eq!(ignored_key("postgres.pool.max_sise"), "postgres.pool.max_sise");
}

#[test]
fn a_malformed_mongodb_url_is_refused() {
    let err = Fixture::new("[mongo]\nuri = \"http://db:27017\"\nhosts = []\n").load(None, &[]).unwrap_err();
    assert!(problems(&err).iter().any(|p| p.starts_with("mongo.uri") && p.contains("malformed")), "{err}");
}

#[test]
fn missing_files_are_named() {
    let err = Fixture::new("[postgres.tls]\nmode = \"verify-full\"\nca_file = \"/nonexistent/ca.pem\"\n")
        .load(None, &[])
        .unwrap_err();
    assert!(problems(&err)[0].contains("file not found: /nonexistent/ca.pem"), "{err}");
    let err = Config::load(LoadOptions {
        file: Some("/nonexistent/fwdb.toml".into()),
        env: Some(vec![]),
        ..Default::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("cannot read /nonexistent/fwdb.toml"), "{err}");
}

#[test]
fn invalid_toml_says_where() {
    let err = Fixture::new("[postgres\n").load(None, &[]).unwrap_err();
    assert!(err.to_string().contains("not valid TOML"), "{err}");
    assert!(err.to_string().contains("line 1"), "{err}");
}

#[test]
fn a_password_file_is_read_and_its_origin_kept() {
    let f = Fixture::new("");
    let pw = f.file("pg.pw", "file-secret-123\n");
    let cfg = f.load(None, &[("FWDB__POSTGRES__PASSWORD_FILE", pw.to_str().unwrap())]).unwrap();
    assert_eq!(cfg.postgres.password.as_ref().map(Secret::expose), Some("file-secret-123"));
    assert_eq!(cfg.origin_of("postgres.password"), "env FWDB__POSTGRES__PASSWORD_FILE");
    let both =
        f.load(None, &[("FWDB__POSTGRES__PASSWORD_FILE", pw.to_str().unwrap()), ("FWDB__POSTGRES__PASSWORD", "x")]);
    assert!(both.unwrap_err().to_string().contains("keep one"));
}

#[test]
fn production_refuses_weak_tls_and_missing_authentication() {
    let err = Fixture::new("").load(Some(Profile::Production), &[]).unwrap_err();
    let text = err.to_string();
    for needle in [
        "postgres.tls.mode (default): the production profile requires verify-full, not prefer",
        "postgres.password",
        "trust authentication is refused",
        "mongo.tls.enabled",
        "mongo.user",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in {text}");
    }
}

#[test]
fn production_refuses_a_password_written_in_the_file() {
    let f = Fixture::new("[postgres]\npassword = \"in-the-file\"\n");
    let err = f.load(Some(Profile::Production), &[]).unwrap_err();
    assert!(problems(&err).iter().any(|p| p.contains("refused in production")), "{err}");
    assert!(!err.to_string().contains("in-the-file"), "the error printed the password: {err}");
}

#[test]
fn production_accepts_verified_tls_and_scram() {
    let f = Fixture::new("");
    let ca = f.file("ca.pem", "x");
    let ca = ca.to_str().unwrap();
    let cfg = f.load(
        Some(Profile::Production),
        &[
            ("FWDB__POSTGRES__TLS__MODE", "verify-full"),
            ("FWDB__POSTGRES__TLS__CA_FILE", ca),
            ("FWDB__POSTGRES__PASSWORD", "pw"),
            ("FWDB__MONGO__TLS__ENABLED", "true"),
            ("FWDB__MONGO__USER", "app"),
            ("FWDB__MONGO__PASSWORD", "pw"),
        ],
    );
    assert!(cfg.is_ok(), "{:?}", cfg.err().map(|e| e.to_string()));
}

#[test]
fn show_redacts_every_secret_and_gives_each_origin() {
    let f = Fixture::new("[mongo]\nuri = \"mongodb://app:uri-secret-9@db:27017/?replicaSet=rs\"\nhosts = []\n");
    let cfg = f.load(None, &[("FWDB__POSTGRES__PASSWORD", "env-secret-7")]).unwrap();
    let shown = cfg.show();
    let all = format!("{shown:?}{cfg:?}");
    assert!(!all.contains("env-secret-7") && !all.contains("uri-secret-9"), "{all}");
    let pw = shown.iter().find(|s| s.key == "postgres.password").unwrap();
    assert_eq!((pw.value.as_str(), pw.origin.as_str()), (REDACTED, "env FWDB__POSTGRES__PASSWORD"));
    let uri = shown.iter().find(|s| s.key == "mongo.uri").unwrap();
    assert_eq!(uri.value, "mongodb://app:[redacted]@db:27017/?replicaSet=rs");
    assert!(uri.origin.ends_with("fwdb.toml:2"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = Fixture::new("[postgres.pool]\nmin_size = 9\nmax_size = 1\n[mongo.pool]\nmin_size = 9\nmax_size = 1\n")
        .load(None, &[])
        .unwrap_err();
    assert_eq!(err.config_problems().len(), 2, "{err}");
}

#[test]
fn the_admin_login_is_configured_apart_with_its_password_read_from_a_file() {
    let f = Fixture::new("");
    let pw = f.file("admin.pw", "s3cret-admin\n");
    f.file(
        DEFAULT_FILE,
        &format!("[postgres.admin]\nuser = \"migrator\"\npassword_file = {:?}\n", pw.display().to_string()),
    );
    let cfg = f.load(None, &[("FWDB__POSTGRES__PASSWORD", "rt")]).unwrap();
    let admin = cfg.postgres.as_admin();
    assert_eq!((admin.user.as_str(), cfg.postgres.user.as_str()), ("migrator", "fwdb_app"));
    assert_eq!(admin.password.as_ref().map(|s| s.expose().to_string()).as_deref(), Some("s3cret-admin"));
    assert!(
        cfg.origin_of("postgres.admin.password").ends_with("fwdb.toml:3"),
        "{}",
        cfg.origin_of("postgres.admin.password")
    );
    assert!(!format!("{cfg:?}").contains("s3cret-admin"));
}

#[test]
fn outside_development_one_login_for_services_and_migrations_is_refused() {
    let f = Fixture::new("[postgres]\nuser = \"app\"\n[postgres.admin]\nuser = \"app\"\n");
    assert!(f.load(None, &[]).is_ok(), "development allows it");
    let err = f.load(Some(Profile::Staging), &[]).unwrap_err();
    assert!(
        problems(&err).iter().any(|p| p.starts_with("postgres.admin.user (")
            && p.contains("fwdb.toml:4")
            && p.contains("the same login as postgres.user")),
        "{err}"
    );
    let err = Fixture::new("").load(None, &[("FWDB__POSTGRES__ADMIN__USER", "Bad-Name")]).unwrap_err();
    assert!(
        problems(&err).iter().any(|p| p.starts_with("postgres.admin.user (env FWDB__POSTGRES__ADMIN__USER)")),
        "{err}"
    );
}
