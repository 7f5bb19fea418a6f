//! `msb image inspect`.

use microsandbox::{image, Paths};

/// Arguments of `msb image inspect`.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Image reference.
    reference: String,
}

/// Prints the image record as JSON.
pub fn run(paths: &Paths, args: InspectArgs) -> anyhow::Result<i32> {
    let record = image::inspect(paths, &args.reference)?;
    println!("{}", serde_json::to_string_pretty(&record)?);
    Ok(0)
}
