//! Layered configuration: built-in defaults, then `fwdb.toml` (or
//! `--config PATH`), then the active profile's section of that file, then
//! `FWDB__...` environment variables. Each value remembers its origin, so
//! errors and `fwdb config show` can say where it came from.

mod backup;
mod cron;
mod ident;
mod layers;
mod model;
mod routing;
mod secret;
mod security;
mod server;
mod validate;

pub use backup::{
    BackupConfig, EncryptionConfig, IncrementalType, RetentionConfig, S3Config, ScheduleConfig, StorageUrl,
};
pub use cron::{next_run, parse_cron};
pub use ident::validate_identifier;
pub use layers::Origin;
pub use model::{
    AdminLogin, Config, MongoConfig, MongoPoolConfig, MongoTlsConfig, PgHost, PoolConfig, PostgresConfig, Profile,
    ReadPreference, SslMode, TlsConfig,
};
pub use routing::RoutingConfig;
pub use secret::{redact_url_password, Secret, REDACTED};
pub use security::SecurityConfig;
pub use server::ServerConfig;

use crate::error::{ConfigProblem, Error, Result};
use layers::{env_key, env_value, Layered, ParsedFile, ENV_PREFIX};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toml::{Table, Value};

/// The file read when no `--config` is given, if it exists.
pub const DEFAULT_FILE: &str = "fwdb.toml";
/// Chooses the profile when `--profile` is not given.
pub const PROFILE_ENV: &str = "FWDB_PROFILE";

/// How to load: which file, which profile, which environment.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// An explicit file, which must exist. `None`: `fwdb.toml` in `dir` when present.
    pub file: Option<PathBuf>,
    /// Overrides `FWDB_PROFILE`.
    pub profile: Option<Profile>,
    /// The environment to read; `None` reads the process environment.
    /// Tests pass their own so they need not mutate the process's.
    pub env: Option<Vec<(String, String)>>,
    /// Where `fwdb.toml` is looked for; `None` is the current directory.
    pub dir: Option<PathBuf>,
}

/// One line of `fwdb config show`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ShownValue {
    pub key: String,
    pub value: String,
    pub origin: String,
}

/// Where each value of a loaded [`Config`] came from.
#[derive(Clone, Default)]
pub struct Provenance(Arc<Layered>);

impl std::fmt::Debug for Provenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The layered values may hold secrets: never print them.
        f.write_str("Provenance(..)")
    }
}

impl Config {
    /// Loads and validates the configuration; every problem found is reported at once.
    pub fn load(opts: LoadOptions) -> Result<Config> {
        let env: Vec<(String, String)> = opts.env.clone().unwrap_or_else(|| std::env::vars().collect());
        let mut problems = Vec::new();
        let profile = choose_profile(&opts, &env, &mut problems);
        let file = read_file(&opts, &mut problems);
        let (config, layered) = build(profile, file.as_ref(), &env, &mut problems);
        check_other_profiles(profile, file.as_ref(), &mut problems);
        let Some(mut config) = config else { return Err(Error::config(problems)) };
        let mut layered = layered;
        config.profile = profile;
        validate::resolve_secrets(&mut config, &mut layered, &mut problems);
        problems.extend(validate::validate(&config, &layered));
        if !problems.is_empty() {
            return Err(Error::config(problems));
        }
        config.provenance = Provenance(Arc::new(layered));
        Ok(config)
    }

    /// The effective configuration, one line per key, secrets redacted.
    pub fn show(&self) -> Vec<ShownValue> {
        let mut out = vec![ShownValue {
            key: "profile".into(),
            value: self.profile.to_string(),
            origin: self.provenance.0.get("profile").map(|(_, o)| o.to_string()).unwrap_or_else(|| "default".into()),
        }];
        let table = Table::try_from(self).unwrap_or_default();
        let mut flat = Layered::default();
        flat.add_table(&table, |_| Origin::Default);
        for (key, value) in flat.to_flat() {
            let origin = self.provenance.0.origin_of(&key).to_string();
            let value = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            out.push(ShownValue { key, value, origin });
        }
        out
    }

    /// Where `key` (dotted) got its value.
    pub fn origin_of(&self, key: &str) -> String {
        self.provenance.0.origin_of(key).to_string()
    }
}

fn choose_profile(opts: &LoadOptions, env: &[(String, String)], problems: &mut Vec<ConfigProblem>) -> Profile {
    if let Some(p) = opts.profile {
        return p;
    }
    match env.iter().find(|(k, _)| k == PROFILE_ENV) {
        Some((_, v)) => v.parse().unwrap_or_else(|message| {
            problems.push(ConfigProblem { key: "profile".into(), origin: format!("env {PROFILE_ENV}"), message });
            Profile::default()
        }),
        None => Profile::default(),
    }
}

fn read_file(opts: &LoadOptions, problems: &mut Vec<ConfigProblem>) -> Option<ParsedFile> {
    let (path, required) = match &opts.file {
        Some(p) => (p.clone(), true),
        None => (opts.dir.clone().unwrap_or_default().join(DEFAULT_FILE), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return None,
        Err(e) => {
            problems.push(ConfigProblem {
                key: "(file)".into(),
                origin: "--config".into(),
                message: format!("cannot read {}: {e}", path.display()),
            });
            return None;
        }
    };
    ParsedFile::parse(&path, &text).map_err(|p| problems.push(p)).ok()
}

fn is_profile_section(key: &str) -> bool {
    Profile::ALL.iter().any(|p| p.as_str() == key)
}

/// Builds the layers for `profile` and deserializes them.
fn build(
    profile: Profile,
    file: Option<&ParsedFile>,
    env: &[(String, String)],
    problems: &mut Vec<ConfigProblem>,
) -> (Option<Config>, Layered) {
    let mut layered = Layered::default();
    let defaults = Table::try_from(Config::default()).unwrap_or_default();
    layered.add_table(&defaults, |_| Origin::Default);
    if let Some(f) = file {
        add_file_layers(&mut layered, f, profile);
    }
    for (var, raw) in env.iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)) {
        match env_key(var) {
            Some(key) => {
                let like = layered.get(&key).map(|(v, _)| v.clone());
                layered.set(key, env_value(raw, like.as_ref()), Origin::Env(var.clone()));
            }
            None => problems.push(ConfigProblem {
                key: var.clone(),
                origin: format!("env {var}"),
                message: "malformed variable name; write FWDB__SECTION__KEY".into(),
            }),
        }
    }
    let config = deserialize(&layered, problems);
    (config, layered)
}

fn add_file_layers(layered: &mut Layered, f: &ParsedFile, profile: Profile) {
    let base: Table =
        f.table.iter().filter(|(k, _)| !is_profile_section(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
    layered.add_table(&base, |key| Origin::File { path: f.path.clone(), line: f.line_of(key), profile: None });
    if let Some(Value::Table(section)) = f.table.get(profile.as_str()) {
        layered.add_table(section, |key| Origin::File {
            path: f.path.clone(),
            line: f.line_of(&format!("{profile}.{key}")),
            profile: Some(profile.to_string()),
        });
    }
}

fn deserialize(layered: &Layered, problems: &mut Vec<ConfigProblem>) -> Option<Config> {
    let value = Value::Table(layered.to_table());
    let mut unknown: Vec<String> = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(ignored_key(&path.to_string()));
    let de = serde_ignored::Deserializer::new(value, &mut record);
    let result: std::result::Result<Config, _> = serde_path_to_error::deserialize(de);
    for key in unknown {
        problems.push(ConfigProblem {
            origin: layered.origin_of(&key).to_string(),
            message: "unknown key".into(),
            key,
        });
    }
    match result {
        Ok(c) => Some(c),
        Err(e) => {
            let key = e.path().to_string();
            problems.push(ConfigProblem {
                origin: layered.origin_of(&key).to_string(),
                message: e.inner().to_string(),
                key,
            });
            None
        }
    }
}

/// serde_ignored writes list elements as `.1` (and options as `.?`); errors
/// and origins write them as serde_path_to_error does, `[1]`.
fn ignored_key(path: &str) -> String {
    let mut out = String::new();
    for part in path.split('.').filter(|p| *p != "?") {
        if !out.is_empty() && !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

/// Typos in a profile section that is not active today would bite on the
/// day it is; report their unknown keys now.
fn check_other_profiles(active: Profile, file: Option<&ParsedFile>, problems: &mut Vec<ConfigProblem>) {
    let Some(f) = file else { return };
    for p in Profile::ALL.into_iter().filter(|p| *p != active) {
        if !f.table.contains_key(p.as_str()) {
            continue;
        }
        let mut scratch = Vec::new();
        let (_, _) = build(p, Some(f), &[], &mut scratch);
        problems
            .extend(scratch.into_iter().filter(|s| s.message == "unknown key" && s.origin.contains(&format!("[{p}]"))));
    }
}

impl Layered {
    fn to_flat(&self) -> Vec<(String, Value)> {
        self.keys().map(|k| (k.clone(), self.get(k).map(|(v, _)| v.clone()).unwrap_or(Value::Boolean(false)))).collect()
    }
}

/// Reads a secret file: the first line, without its line ending.
pub(crate) fn read_secret_file(path: &Path) -> std::io::Result<Secret> {
    let text = std::fs::read_to_string(path)?;
    Ok(Secret::new(text.lines().next().unwrap_or_default()))
}

#[cfg(test)]
mod tests;
