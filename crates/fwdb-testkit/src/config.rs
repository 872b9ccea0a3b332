//! The fwdb configuration that reaches a stack: the `FWDB__...` variables
//! (what `fwdb dev env` prints) and the [`fwdb::Config`] they load into.
//! One source for both, so the library and the command see the same stack.

use crate::info::StackInfo;

impl StackInfo {
    /// The `FWDB__...` settings for `pg_database` and `mongo_database` on this
    /// stack: the runtime login and the admin login with SCRAM, TLS verify-full with the stack's CA and
    /// the app's client certificate.
    pub fn env_vars(&self, pg_database: &str, mongo_database: &str) -> Vec<(String, String)> {
        let host = |port: u16| format!("{}:{port}", self.host);
        let replicas: Vec<String> = self.replicas.iter().map(|r| format!("\"{}\"", host(r.port))).collect();
        let path = |p: &std::path::Path| p.display().to_string();
        let mut vars = vec![
            ("FWDB__POSTGRES__PRIMARY", host(self.primary.port)),
            ("FWDB__POSTGRES__REPLICAS", format!("[{}]", replicas.join(", "))),
            ("FWDB__POSTGRES__DATABASE", pg_database.to_string()),
            ("FWDB__POSTGRES__USER", self.app_user.clone()),
            ("FWDB__POSTGRES__PASSWORD", self.app_password.clone()),
            ("FWDB__POSTGRES__ADMIN__USER", self.admin_user.clone()),
            ("FWDB__POSTGRES__ADMIN__PASSWORD", self.admin_password.clone()),
            ("FWDB__POSTGRES__TLS__MODE", "verify-full".into()),
            ("FWDB__POSTGRES__TLS__CA_FILE", path(&self.tls.ca_cert)),
            ("FWDB__POSTGRES__TLS__CERT_FILE", path(&self.tls.client_cert)),
            ("FWDB__POSTGRES__TLS__KEY_FILE", path(&self.tls.client_key)),
            ("FWDB__MONGO__DATABASE", mongo_database.to_string()),
        ];
        if let Some(m) = &self.mongo {
            vars.push(("FWDB__MONGO__URI", m.uri.clone()));
        }
        vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// The configuration those variables load into (development profile,
    /// no file), plus `extra` variables that override them.
    pub fn config(
        &self,
        pg_database: &str,
        mongo_database: &str,
        extra: &[(&str, &str)],
    ) -> fwdb::Result<fwdb::Config> {
        let mut env = self.env_vars(pg_database, mongo_database);
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        fwdb::Config::load(fwdb::LoadOptions {
            file: None,
            profile: Some(fwdb::Profile::Development),
            env: Some(env),
            // The stack folder has no fwdb.toml, so a developer's own file cannot leak in.
            dir: Some(self.dir.clone()),
        })
    }
}
