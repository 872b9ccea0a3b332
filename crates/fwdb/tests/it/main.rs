//! The library's integration tests: one binary, one shared local stack
//! (PostgreSQL primary + replicas, MongoDB-protocol server), a fresh database
//! per test through `fwdb_testkit::TestApp`.

mod model;
