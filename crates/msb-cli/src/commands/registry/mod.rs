//! `msb registry …`: credentials for pulling from private registries.

pub mod login;
pub mod logout;
pub mod ls;

/// Registry subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum RegistryCommand {
    /// Check credentials against a registry and save them for later pulls.
    Login(login::LoginArgs),
    /// Forget the saved credentials of a registry.
    Logout(logout::LogoutArgs),
    /// List registries with known credentials (passwords are never shown).
    #[command(alias = "list")]
    Ls(ls::LsArgs),
}

/// Runs a registry subcommand.
pub async fn run(cmd: RegistryCommand) -> anyhow::Result<i32> {
    let msb = microsandbox::Microsandbox::from_env();
    let paths = msb.paths();
    match cmd {
        RegistryCommand::Login(args) => login::run(paths, args).await,
        RegistryCommand::Logout(args) => logout::run(paths, args),
        RegistryCommand::Ls(args) => ls::run(paths, args),
    }
}
