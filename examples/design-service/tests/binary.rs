//! An integration test makes `cargo test --workspace` build this package's
//! binary (`target/<profile>/design-service`) with the workspace's features,
//! in the same cargo invocation; fwdb-cli's `example::` test then runs that
//! binary instead of starting a nested `cargo build`.

#[test]
fn the_service_binary_refuses_a_bad_configuration_by_key() {
    let dir = std::env::temp_dir();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_design-service"))
        .env("FWDB__POSTGRES__POOL__MIN_SIZE", "20")
        .env("FWDB__POSTGRES__POOL__MAX_SIZE", "5")
        .current_dir(&dir)
        .output()
        .expect("the design-service binary runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with min_size above max_size: {err}");
    assert!(err.contains("min_size"), "{err}");
}
