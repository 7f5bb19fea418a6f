//! `msb install IMAGE [-- COMMAND…]` and `msb uninstall NAME…`: commands on the host's PATH
//! that run in a sandbox (`python` → `msb run -n python python -- python3 "$@"`). Each is a
//! small shell script in `$MSB_HOME/bin` carrying a marker on its second line, so uninstall
//! removes only what install wrote.

use crate::output::{notice, table, ListFormat};
use anyhow::{bail, Context, Result};
use microsandbox::image::PullPolicy;
use microsandbox::parse_size_mib;
use microsandbox::{Microsandbox, Paths};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The second line of every script install writes, followed by the image.
const MARKER: &str = "# msb-install: ";

/// Names an installed command may not take.
const RESERVED: [&str; 2] = ["msb", "agentd"];

/// Arguments of `msb install`.
#[derive(clap::Args, Debug)]
pub struct InstallArgs {
    /// The image the command runs in.
    #[arg(required_unless_present = "list")]
    image: Option<String>,
    /// The command's name, also its sandbox's (default: the image's name, `python` for
    /// `python:3.12`).
    #[arg(short = 'n', long)]
    name: Option<String>,
    /// Number of virtual CPUs.
    #[arg(short = 'c', long)]
    cpus: Option<u32>,
    /// Guest memory, e.g. 1G, 768M; bare numbers are MiB.
    #[arg(short = 'm', long, value_name = "SIZE", value_parser = parse_size_mib)]
    memory: Option<u32>,
    /// Working directory inside the guest.
    #[arg(short = 'w', long, value_name = "DIR")]
    workdir: Option<String>,
    /// The sandbox's shell.
    #[arg(long, value_name = "PATH")]
    shell: Option<String>,
    /// Environment: KEY=VALUE, or KEY to copy the value the host has when the command runs.
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Replace a command of the same name that install wrote.
    #[arg(short, long)]
    force: bool,
    /// Do not pull the image now (the first run pulls it).
    #[arg(long)]
    no_pull: bool,
    /// A fresh sandbox for every run, removed afterwards (default: one named sandbox, kept
    /// between runs).
    #[arg(long)]
    tmp: bool,
    /// List the installed commands instead.
    #[arg(short = 'l', long, conflicts_with = "image")]
    list: bool,
    #[command(flatten)]
    format: ListFormat,
    /// Command and arguments run in the sandbox, before the ones the command is given
    /// (default: the image's entrypoint and cmd).
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// Arguments of `msb uninstall`.
#[derive(clap::Args, Debug)]
pub struct UninstallArgs {
    /// Installed commands to remove.
    #[arg(required = true)]
    names: Vec<String>,
}

/// Writes the command's script (pulling its image first unless `--no-pull`).
pub async fn install(args: InstallArgs) -> Result<i32> {
    let msb = Microsandbox::from_env();
    let paths = msb.paths();
    let Some(image) = args.image.as_deref() else {
        return list(paths, &args.format);
    };
    let name = match &args.name {
        Some(n) => n.clone(),
        None => default_name(image),
    };
    microsandbox::validate_name(&name).context("the command's name")?;
    if RESERVED.contains(&name.as_str()) {
        bail!("'{name}' is reserved: choose another with --name");
    }
    let script = paths.home().join("bin").join(&name);
    if script.exists() && !(args.force && written_by_install(&script)) {
        let how = match written_by_install(&script) {
            true => "add --force to replace it",
            false => "it was not written by msb install, so it is left alone",
        };
        bail!("{} exists: {how}", script.display());
    }
    for env in &args.env {
        // Checked now, with a placeholder for host values, so a typo fails here.
        microsandbox::parse_env(env, |_| Some(String::new()))?;
    }
    if !args.no_pull {
        crate::commands::pull::ensure(paths, image, PullPolicy::IfMissing).await?;
    }
    let msb_exe = std::env::current_exe().context("finding the msb executable")?;
    let text = script_text(&args, image, &name, paths.home(), &msb_exe);
    std::fs::create_dir_all(script.parent().unwrap_or(Path::new("/")))
        .with_context(|| format!("creating {}", paths.home().join("bin").display()))?;
    let tmp = script.with_extension("msb-tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, &script).with_context(|| format!("writing {}", script.display()))?;
    println!("{name}");
    let bin = script.parent().map(Path::to_path_buf).unwrap_or_default();
    if !on_path(&bin) {
        notice(&format!(
            "{} is not on your PATH: add `export PATH=\"{}:$PATH\"` to your shell's profile",
            bin.display(),
            bin.display()
        ));
    }
    Ok(0)
}

/// Removes installed commands; others of the same name are left alone. Exit 1 if any
/// could not be removed.
pub fn uninstall(args: UninstallArgs) -> Result<i32> {
    let bin = Microsandbox::from_env().paths().home().join("bin");
    let mut failed = false;
    for name in &args.names {
        let script = bin.join(name);
        let outcome = if microsandbox::validate_name(name).is_err() || !script.exists() {
            Err(format!("no command '{name}' is installed"))
        } else if !written_by_install(&script) {
            Err(format!(
                "{} was not written by msb install: left alone",
                script.display()
            ))
        } else {
            std::fs::remove_file(&script).map_err(|e| format!("removing {}: {e}", script.display()))
        };
        match outcome {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("msb: error: {e}");
                failed = true;
            }
        }
    }
    Ok(i32::from(failed))
}

/// The commands install wrote, with their images.
fn list(paths: &Paths, format: &ListFormat) -> Result<i32> {
    let mut installed: Vec<(String, String)> = std::fs::read_dir(paths.home().join("bin"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let image = marked_image(&entry.path())?;
            Some((entry.file_name().to_string_lossy().into_owned(), image))
        })
        .collect();
    installed.sort();
    if format.json() {
        let rows: Vec<_> = installed
            .iter()
            .map(|(name, image)| serde_json::json!({ "name": name, "image": image }))
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if format.quiet {
        installed.iter().for_each(|(name, _)| println!("{name}"));
    } else if installed.is_empty() {
        eprintln!("no commands installed");
    } else {
        let rows: Vec<[String; 2]> = installed.into_iter().map(|(n, i)| [n, i]).collect();
        print!("{}", table(["NAME", "IMAGE"], &rows));
    }
    Ok(0)
}

/// The image's last path component without tag or digest, as a valid name.
fn default_name(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    let bare = last.split(['@', ':']).next().unwrap_or(last);
    bare.to_ascii_lowercase().replace(['_', '.'], "-")
}

/// The script: run in a TTY when both ends are terminals; `MSB_HOME` and msb as they were
/// at install, so the command finds its sandbox whatever the caller's environment.
fn script_text(args: &InstallArgs, image: &str, name: &str, home: &Path, msb: &Path) -> String {
    let mut run = vec!["run".to_string()];
    if args.tmp {
        run.push("--rm".into());
    } else {
        run.extend(["-q".into(), "-n".into(), name.into()]);
    }
    let mut flag = |f: &str, v: Option<String>| {
        if let Some(v) = v {
            run.extend([f.to_string(), v]);
        }
    };
    flag("-c", args.cpus.map(|c| c.to_string()));
    flag("-m", args.memory.map(|m| m.to_string()));
    flag("-w", args.workdir.clone());
    flag("--shell", args.shell.clone());
    for env in &args.env {
        run.extend(["-e".into(), env.clone()]);
    }
    run.push(image.into());
    run.push("--".into());
    run.extend(args.command.iter().cloned());
    let quoted: Vec<String> = run.iter().map(|a| crate::output::shell_quote(a)).collect();
    format!(
        "#!/bin/sh\n{MARKER}{image}\n# Runs `{name}` in a sandbox; `msb uninstall {name}` removes it.\n\
         tty=; [ -t 0 ] && [ -t 1 ] && tty=-t\n\
         MSB_HOME={} exec {} {} $tty {} \"$@\"\n",
        crate::output::shell_quote(&home.display().to_string()),
        crate::output::shell_quote(&msb.display().to_string()),
        quoted[0],
        quoted[1..].join(" ")
    )
}

/// The image named by the marker on `script`'s second line, if install wrote it.
fn marked_image(script: &Path) -> Option<String> {
    let text = std::fs::read(script).ok()?;
    let text = String::from_utf8_lossy(&text[..text.len().min(4096)]).into_owned();
    let second = text.lines().nth(1)?;
    second.strip_prefix(MARKER).map(str::to_string)
}

fn written_by_install(script: &Path) -> bool {
    marked_image(script).is_some()
}

/// Whether `dir` is on `$PATH`.
fn on_path(dir: &Path) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d == dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_image() {
        assert_eq!(default_name("python"), "python");
        assert_eq!(default_name("ghcr.io/org/my_app:1.2"), "my-app");
        assert_eq!(default_name("localhost:5000/tools/jq@sha256:abc"), "jq");
    }
}
