//! The testkit on its own: a private stack starts, answers, and leaves
//! nothing behind. (The fuller behaviour is tested in fwdb-cli's `stack` tests.)

use fwdb_testkit::{processes_mentioning, Node, Stack, StackOptions};

#[test]
fn a_private_stack_starts_answers_and_leaves_nothing_behind() {
    let stack = Stack::start(StackOptions::default()).expect("stack starts");
    let dir = stack.dir().to_path_buf();
    for h in stack.health() {
        assert!(h.ok, "{} unhealthy: {}", h.name, h.detail);
    }
    assert_eq!(stack.psql(Node::Replica(1), "postgres", "select pg_is_in_recovery()").expect("psql"), "t");
    stack.stop().expect("stop");
    let left = processes_mentioning(&dir);
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(!dir.exists(), "temp folder removed");
}
