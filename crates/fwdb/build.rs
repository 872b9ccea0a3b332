// The migrations are embedded with include_dir!, which cargo does not track:
// without this, editing a migration would leave a stale binary.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
