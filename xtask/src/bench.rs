//! Benchmarks.
#[derive(clap::Subcommand)]
pub enum Which {
    Boot,
}
pub fn run(_w: Which) -> anyhow::Result<()> {
    Ok(())
}
