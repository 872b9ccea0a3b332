//! `[security]`: who `fwdb roles apply|check` connects as, and the passwords
//! of the login roles of 9.1. Every password is a [`Secret`], given directly
//! (best through `FWDB__SECURITY__...` variables) or as a `*_file` read when
//! the command runs.

use super::secret::Secret;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct SecurityConfig {
    /// The role `fwdb roles apply|check` connects as (it needs CREATEROLE and
    /// ownership of the schemas, in practice a superuser). Unset: `postgres.user`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_password: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_password_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar_service_password: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar_service_password_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_service_password: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_service_password_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub design_service_password: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub design_service_password_file: Option<PathBuf>,
}

impl SecurityConfig {
    /// The admin password: `admin_password`, else the first line of `admin_password_file`.
    pub fn admin_password(&self) -> std::io::Result<Option<Secret>> {
        pick(&self.admin_password, self.admin_password_file.as_deref())
    }

    /// The password of login role `role` (avatar_service, catalog_service, design_service).
    pub fn login_password(&self, role: &str) -> std::io::Result<Option<Secret>> {
        match role {
            "avatar_service" => pick(&self.avatar_service_password, self.avatar_service_password_file.as_deref()),
            "catalog_service" => pick(&self.catalog_service_password, self.catalog_service_password_file.as_deref()),
            "design_service" => pick(&self.design_service_password, self.design_service_password_file.as_deref()),
            _ => Ok(None),
        }
    }

    /// (password key, file key, both set?, file) of every secret, for validation.
    pub(crate) fn secret_keys(&self) -> Vec<(&'static str, bool, Option<&Path>)> {
        vec![
            ("security.admin_password", self.admin_password.is_some(), self.admin_password_file.as_deref()),
            (
                "security.avatar_service_password",
                self.avatar_service_password.is_some(),
                self.avatar_service_password_file.as_deref(),
            ),
            (
                "security.catalog_service_password",
                self.catalog_service_password.is_some(),
                self.catalog_service_password_file.as_deref(),
            ),
            (
                "security.design_service_password",
                self.design_service_password.is_some(),
                self.design_service_password_file.as_deref(),
            ),
        ]
    }
}

fn pick(direct: &Option<Secret>, file: Option<&Path>) -> std::io::Result<Option<Secret>> {
    if let Some(s) = direct {
        return Ok(Some(s.clone()));
    }
    match file {
        Some(f) => super::read_secret_file(f).map(Some),
        None => Ok(None),
    }
}
