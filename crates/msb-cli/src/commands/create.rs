//! `msb create NAME --image REF [options] [-- COMMAND]`: make a sandbox and start it in the
//! background.

use crate::sandbox_args::SandboxArgs;
use anyhow::Result;
use microsandbox::Microsandbox;

/// Arguments of `msb create`.
#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("root").required(true).args(["image", "rootfs"]))]
pub struct CreateArgs {
    /// Name of the new sandbox (1-63 of a-z, 0-9, '-').
    name: String,
    /// OCI image to boot (pulled first if it is not in the local store).
    #[arg(long, value_name = "REF")]
    image: Option<String>,
    #[command(flatten)]
    sandbox: SandboxArgs,
    /// A command to start at boot; the sandbox stops when it ends (its output: `msb logs`).
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// Creates and starts the sandbox; prints its name.
pub async fn run(args: CreateArgs, matches: &clap::ArgMatches) -> Result<i32> {
    let msb = Microsandbox::from_env();
    let mut builder = args.sandbox.builder(&msb, &args.name, args.image.as_deref(), matches)?;
    builder.build()?;
    if let Some(image) = &args.image {
        crate::commands::pull::ensure(msb.paths(), image, args.sandbox.pull).await?;
        builder = builder.pull_policy(microsandbox::image::PullPolicy::IfMissing);
    }
    if !args.command.is_empty() {
        builder = builder.command(args.command);
    }
    builder.create_detached().await?;
    println!("{}", args.name);
    Ok(0)
}
