// `sqlx::migrate!` embeds the migrations at compile time: rebuild this crate
// when one is added or changed, or a binary would run without it.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
