//! Rebuilds the crate when a migration is added or edited: `sqlx::migrate!` embeds the files of
//! `migrations/`, but the compiler only notices changes to files it already knows.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
