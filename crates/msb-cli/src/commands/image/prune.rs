//! `msb image prune`.

use microsandbox::{image, Paths};

/// Deletes layers that no image references.
pub fn run(paths: &Paths) -> anyhow::Result<i32> {
    let removed = image::prune(paths)?;
    println!("Deleted {removed} unused layer(s)");
    Ok(0)
}
