//! `msb image …`: the local image store.

pub mod inspect;
pub mod ls;
pub mod prune;
pub mod rm;

/// Image subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum ImageCommand {
    /// Pull an image from a registry (as `msb pull`).
    Pull(crate::commands::pull::PullArgs),
    /// List images with their size on disk.
    #[command(alias = "list")]
    Ls(ls::LsArgs),
    /// Show an image's record (config, layers) as JSON.
    Inspect(inspect::InspectArgs),
    /// Remove images; layers other images use are kept.
    #[command(alias = "remove")]
    Rm(rm::RmArgs),
    /// Delete layers no image uses.
    Prune,
}

/// Runs an image subcommand.
pub async fn run(cmd: ImageCommand) -> anyhow::Result<i32> {
    let msb = microsandbox::Microsandbox::from_env();
    let paths = msb.paths();
    match cmd {
        ImageCommand::Pull(args) => crate::commands::pull::run(args).await,
        ImageCommand::Ls(args) => ls::run(paths, args),
        ImageCommand::Inspect(args) => inspect::run(paths, args),
        ImageCommand::Rm(args) => rm::run(paths, args),
        ImageCommand::Prune => prune::run(paths),
    }
}
