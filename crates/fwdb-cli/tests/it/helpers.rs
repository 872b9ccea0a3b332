//! The command's test helpers over the testkit's `TestApp` (a fresh
//! PostgreSQL and MongoDB database on the shared local stack): the same app,
//! plus the `fwdb` binary set up for it.

#![allow(dead_code)]

pub use fwdb_testkit::{scratch_tables, superuser};
use std::process::Command;

/// The testkit's [`fwdb_testkit::TestApp`] and the `fwdb` command for it.
pub struct TestApp(fwdb_testkit::TestApp);

impl std::ops::Deref for TestApp {
    type Target = fwdb_testkit::TestApp;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp(fwdb_testkit::TestApp::spawn().await)
    }

    /// A fresh app with the whole Fashion Wallet schema migrated (see the testkit).
    pub async fn migrated() -> TestApp {
        TestApp(fwdb_testkit::TestApp::migrated().await)
    }

    /// The `fwdb` binary, with this app's settings and none of the caller's `FWDB__` variables.
    pub fn fwdb(&self) -> Command {
        let mut cmd = fwdb_command();
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }
}

/// `fwdb` with a clean environment: no `FWDB__` or `FWDB_PROFILE` from the caller, run in an empty folder.
pub fn fwdb_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fwdb"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("FWDB_")) {
        cmd.env_remove(k);
    }
    cmd.current_dir(std::env::temp_dir());
    // Run from a temp folder, the testkit would not find the project's venv and would make another.
    cmd.env("FWDB_ROOT", fwdb_testkit::project_root());
    cmd
}

/// Runs a command and returns (exit code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("the command runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Command lines of running processes that mention `path` (our servers' data folders).
pub fn processes_mentioning(path: &std::path::Path) -> Vec<String> {
    fwdb_testkit::processes_mentioning(path).into_iter().map(|p| format!("{} {}", p.pid, p.cmdline)).collect()
}

/// Kills a child process when dropped, so a failing test leaves nothing running.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
