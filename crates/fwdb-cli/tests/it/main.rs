//! The one integration-test binary: every test runs against the real local
//! stack (PostgreSQL primary + replicas, MongoDB-protocol server), each in
//! databases of its own. See `helpers.rs` for `TestApp::spawn`.

mod helpers;

mod audit;
mod backup;
mod config;
mod design;
mod example;
mod failover;
mod metrics;
mod migrate;
mod mongo;
mod mongo_repo;
mod mongo_tx;
mod multiplex;
mod pooled;
mod query;
mod refs;
mod repo;
mod roles;
mod routing;
mod security;
mod serve;
mod stack;
mod statuspage;
mod tx;
mod up;
