//! `msb create IMAGE | --rootfs PATH | --from-snapshot SNAP [-n NAME] [options] [-- COMMAND]`:
//! make a sandbox and start it in the background.

use crate::sandbox_args::SandboxArgs;
use anyhow::Result;
use microsandbox::Microsandbox;

/// Arguments of `msb create`.
#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("root").required(true).args(["image", "rootfs", "from_snapshot"]))]
pub struct CreateArgs {
    /// OCI image to boot (pulled first if it is not in the local store).
    image: Option<String>,
    /// Resume this snapshot (`msb snapshot ls`) where it was saved: its processes, memory
    /// and files. Its settings come from the snapshot; it gets no secrets.
    #[arg(long, value_name = "SNAP")]
    from_snapshot: Option<String>,
    /// Name of the new sandbox (1-63 of a-z, 0-9, '-'); a generated one is printed.
    #[arg(short = 'n', long)]
    name: Option<String>,
    #[command(flatten)]
    sandbox: SandboxArgs,
    /// A command to start at boot; the sandbox stops when it ends (its output: `msb logs`).
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// Creates and starts the sandbox; prints its name if it was generated.
pub async fn run(args: CreateArgs, matches: &clap::ArgMatches) -> Result<i32> {
    args.sandbox.quiet.apply();
    let msb = Microsandbox::from_env();
    let name = match &args.name {
        Some(name) => name.clone(),
        None => microsandbox::generate_name()?,
    };
    if let Some(snapshot) = &args.from_snapshot {
        refuse_beside_snapshot(matches)?;
        let mut builder = msb.builder(&name).from_snapshot(snapshot);
        for port in args.sandbox.published_ports() {
            builder = builder.publish(*port);
        }
        builder.create_detached().await?;
        if args.name.is_none() {
            println!("{name}");
        }
        return Ok(0);
    }
    let mut builder = args.sandbox.builder(&msb, &name, args.image.as_deref(), matches)?;
    args.sandbox.announce_new_volumes(&msb).await;
    builder.build()?;
    if let Some(image) = &args.image {
        crate::commands::pull::ensure(msb.paths(), image, args.sandbox.pull).await?;
        builder = builder.pull_policy(microsandbox::image::PullPolicy::IfMissing);
    }
    if !args.command.is_empty() {
        builder = builder.command(args.command);
    }
    builder.create_detached().await?;
    // A name the user gave needs no echo; a generated one is how they find the sandbox.
    if args.name.is_none() {
        println!("{name}");
    }
    Ok(0)
}

/// What `--from-snapshot` may be given with: the new sandbox's name and published ports
/// (the host's side); everything else is the snapshot's. (`root` is the group of the
/// root's options, `--from-snapshot` among them.)
const BESIDE_SNAPSHOT: &[&str] = &["root", "from_snapshot", "name", "ports", "quiet"];

/// Refuses any setting given beside `--from-snapshot` that it would not take.
fn refuse_beside_snapshot(matches: &clap::ArgMatches) -> Result<()> {
    // Groups are among the ids too: clap names the group of a flattened struct's options
    // after the struct (`NetArgs`), which no option's id looks like.
    let given = matches.ids().map(clap::Id::as_str).find(|id| {
        !BESIDE_SNAPSHOT.contains(id)
            && id.starts_with(|c: char| c.is_ascii_lowercase())
            && matches!(
                matches.try_get_raw(id).map(|_| matches.value_source(id)),
                Ok(Some(clap::parser::ValueSource::CommandLine))
            )
    });
    match given {
        Some(id) => anyhow::bail!(
            "--{} cannot be given with --from-snapshot: a sandbox made from a snapshot takes its \
             image, command, resources, mounts and network from it (only -n and -p may be given)",
            id.replace('_', "-")
        ),
        None => Ok(()),
    }
}
