//! Security (architecture 2.2, 9): the role and privilege matrix of 9.1 and
//! `roles apply|check`, the audit log's query API, and the validation and
//! quoting of identifiers that must be interpolated into SQL.

mod audit;
mod ident;
mod roles;
mod scram;

pub use audit::{query_audit, AuditEntry, AuditQuery};
pub(crate) use ident::quote_existing;
pub use ident::{quote_ident, quote_literal, validate_identifier};
pub use roles::{
    apply_grants, apply_roles, check_roles, connect_admin, privilege_matrix, Access, ApplyReport, ColumnGrant,
    RoleDifference, RoleSpec, GROUP_ROLES, LOGIN_ROLES, SECURED_SCHEMAS, USER_DIRECTORY,
};
pub use scram::scram_sha_256_verifier;
