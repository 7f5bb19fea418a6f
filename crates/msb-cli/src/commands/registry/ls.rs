//! `msb registry ls`.

use microsandbox::{registry, Paths};

/// Arguments of `msb registry ls`.
#[derive(clap::Args, Debug)]
pub struct LsArgs {
    #[command(flatten)]
    format: crate::output::ListFormat,
}

/// Prints the registries msb has credentials for, and where they come from.
pub fn run(paths: &Paths, args: LsArgs) -> anyhow::Result<i32> {
    let logins = registry::list(paths)?;
    if args.format.quiet {
        for l in &logins {
            println!("{}", l.registry);
        }
        return Ok(0);
    }
    if args.format.json() {
        let rows: Vec<_> = logins
            .iter()
            .map(|l| {
                serde_json::json!({
                    "registry": l.registry, "username": l.username, "source": l.source.to_string(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    if logins.is_empty() {
        eprintln!("no registry credentials; add some with `msb registry login HOST -u USER`");
        return Ok(0);
    }
    let width = logins.iter().map(|l| l.registry.len()).max().unwrap_or(0).max(8) + 2;
    let user_width = logins.iter().map(|l| l.username.len()).max().unwrap_or(0).max(8) + 2;
    println!("{:<width$}{:<user_width$}SOURCE", "REGISTRY", "USERNAME");
    for l in &logins {
        println!("{:<width$}{:<user_width$}{}", l.registry, l.username, l.source);
    }
    Ok(0)
}
