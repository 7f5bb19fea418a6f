//! `msb image rm`.

use microsandbox::{image, Paths};

/// Arguments of `msb image rm`.
#[derive(clap::Args, Debug)]
pub struct RmArgs {
    /// Image references.
    #[arg(required = true)]
    references: Vec<String>,
    /// Remove the reference even if sandboxes use the image (their layers stay until they go).
    #[arg(short, long)]
    force: bool,
    #[command(flatten)]
    quiet: crate::output::QuietArg,
}

/// Removes each image; fails (exit 1) if any could not be removed.
pub fn run(paths: &Paths, args: RmArgs) -> anyhow::Result<i32> {
    args.quiet.apply();
    let mut failed = false;
    for reference in &args.references {
        match image::remove(paths, reference, args.force) {
            Ok(_) if crate::output::is_quiet() => {}
            Ok(layers) => println!("Removed {reference} ({layers} unused layer(s) deleted)"),
            Err(e) => {
                eprintln!("msb: error: {e}");
                failed = true;
            }
        }
    }
    Ok(i32::from(failed))
}
