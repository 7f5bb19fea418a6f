//! Project tasks: setup, guest kernel and agent builds, demo, CI and benchmarks.

mod agent;
mod bench;
mod ci;
mod debian_rootfs;
mod demo;
mod e2b;
mod fuzz;
mod kernel;
mod paths;
mod python;
mod registry;
mod rootfs;
mod setup;
mod unprivileged;
mod util;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "microsandbox project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the Debian packages and tools the project needs (idempotent).
    Setup,
    /// Build the guest kernel (cached by source version + config hash).
    Kernel,
    /// Build the static guest agent and pack it into the initramfs (and the hostile test
    /// agent into one of its own).
    Agent,
    /// Build a small busybox root filesystem for demos and tests.
    Rootfs {
        /// Build the Debian bookworm tree with curl, Python (requests) and Node.js instead.
        #[arg(long)]
        debian: bool,
    },
    /// Set everything up and run a command in a microVM.
    Demo,
    /// Set everything up and run every test (what CI runs).
    Ci,
    /// Run the Python tests (SDK, MCP client, schemathesis) against a fresh `msb serve`, and
    /// build the SDK's wheel.
    Python,
    /// Run the E2B SDK suite (stock `e2b` releases from PyPI) against a fresh
    /// `msb serve --e2b-listen`.
    E2b,
    /// Run the first VM suites again as an ordinary user (when run as root).
    Unprivileged,
    /// Start the local OCI registry and push the fixture images (idempotent).
    Registry(registry::Args),
    /// Build every fuzz target and run each for a while.
    Fuzz(fuzz::Args),
    /// Run a benchmark.
    Bench {
        #[command(subcommand)]
        which: bench::Which,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Setup => setup::run(),
        Task::Kernel => kernel::build().map(drop),
        Task::Agent => agent::build().and_then(|_| agent::build_hostile()).map(drop),
        Task::Rootfs { debian: false } => rootfs::build().map(drop),
        Task::Rootfs { debian: true } => debian_rootfs::build().map(|p| println!("rootfs: {}", p.display())),
        Task::Demo => demo::run(),
        Task::Ci => ci::run(),
        Task::Python => python::test(&rootfs::build()?, &registry::ensure()?),
        Task::E2b => e2b::run(&rootfs::build()?, &registry::ensure()?),
        Task::Unprivileged => unprivileged::test(&demo::build_msb(false)?, &rootfs::build()?, &registry::ensure()?),
        Task::Registry(args) => registry::run(args),
        Task::Fuzz(args) => fuzz::run(&args),
        Task::Bench { which } => bench::run(which),
    }
}
