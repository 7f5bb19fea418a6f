//! Rootfs patches from the command line: `--text`, `--file`, `--mkdir`, `--delete`,
//! `--symlink`, `--append`, applied in the order they are given (whichever flag).
//! Unlike the SDK's default, patches from these flags overwrite existing paths, as
//! `docker cp` does.

use anyhow::{bail, Context, Result};
use clap::ArgMatches;
use microsandbox::Patch;
use std::path::PathBuf;

/// The patch flags, flattened into the sandbox options.
#[derive(clap::Args, Debug, Default)]
pub struct PatchArgs {
    /// Write a text file before boot: GUEST=CONTENT (mode 0644).
    #[arg(long, value_name = "GUEST=CONTENT")]
    text: Vec<String>,
    /// Copy a host file or directory in before boot: HOST:GUEST[:MODE] (MODE in octal, files only).
    #[arg(long, value_name = "HOST:GUEST[:MODE]")]
    file: Vec<String>,
    /// Create a directory before boot: GUEST[:MODE] (default 0755; an existing one is kept).
    #[arg(long, value_name = "GUEST[:MODE]")]
    mkdir: Vec<String>,
    /// Remove a path (recursively) before boot.
    #[arg(long, value_name = "GUEST")]
    delete: Vec<String>,
    /// Create a symlink before boot: TARGET:LINK (LINK absolute).
    #[arg(long, value_name = "TARGET:LINK")]
    symlink: Vec<String>,
    /// Append text to an existing file before boot: GUEST=CONTENT.
    #[arg(long, value_name = "GUEST=CONTENT")]
    append: Vec<String>,
}

const FLAGS: [&str; 6] = ["text", "file", "mkdir", "delete", "symlink", "append"];

/// The patches given on the command line, in command-line order.
pub fn patches(matches: &ArgMatches) -> Result<Vec<Patch>> {
    let mut found: Vec<(usize, Patch)> = Vec::new();
    for flag in FLAGS {
        let (Some(values), Some(indices)) = (matches.get_many::<String>(flag), matches.indices_of(flag)) else {
            continue;
        };
        for (value, index) in values.zip(indices) {
            let patch = parse(flag, value).with_context(|| format!("--{flag} {value}"))?;
            patch.validate().with_context(|| format!("--{flag} {value}"))?;
            found.push((index, patch));
        }
    }
    found.sort_by_key(|(i, _)| *i);
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

fn parse(flag: &str, value: &str) -> Result<Patch> {
    let assignment = || {
        value
            .split_once('=')
            .with_context(|| "expected GUEST=CONTENT".to_string())
    };
    Ok(match flag {
        "text" => {
            let (path, content) = assignment()?;
            Patch::text(path, content).replacing()
        }
        "append" => {
            let (path, content) = assignment()?;
            Patch::append(path, content)
        }
        "delete" => Patch::remove(value),
        "mkdir" => {
            let (path, mode) = split_mode(value)?;
            let patch = Patch::mkdir(path);
            match mode {
                Some(m) => patch.with_mode(m),
                None => patch,
            }
        }
        "symlink" => {
            // The link is absolute, so it starts at the last ":/"; the target may hold ':'.
            let at = value
                .rfind(":/")
                .context("expected TARGET:LINK with an absolute LINK")?;
            Patch::symlink(&value[..at], &value[at + 1..]).replacing()
        }
        "file" => {
            // The guest path is absolute, so it starts at the first ":/".
            let at = value
                .find(":/")
                .context("expected HOST:GUEST[:MODE] with an absolute GUEST")?;
            let host = PathBuf::from(&value[..at]);
            let (guest, mode) = split_mode(&value[at + 1..])?;
            let meta = std::fs::metadata(&host).with_context(|| format!("reading {}", host.display()))?;
            if meta.is_dir() {
                if mode.is_some() {
                    bail!("a MODE applies to files; {} is a directory", host.display());
                }
                Patch::copy_dir(host, guest).replacing()
            } else {
                let patch = Patch::copy_file(host, guest).replacing();
                match mode {
                    Some(m) => patch.with_mode(m),
                    None => patch,
                }
            }
        }
        other => bail!("unknown patch flag --{other}"),
    })
}

/// Splits `PATH[:MODE]` where MODE is octal.
fn split_mode(value: &str) -> Result<(&str, Option<u32>)> {
    match value.rsplit_once(':') {
        Some((path, mode)) if !mode.is_empty() && mode.bytes().all(|b| b.is_ascii_digit()) => {
            let mode = u32::from_str_radix(mode, 8).with_context(|| format!("mode {mode} is not octal"))?;
            Ok((path, Some(mode)))
        }
        _ => Ok((value, None)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        patches: PatchArgs,
    }

    fn parse_all(args: &[&str]) -> Result<Vec<Patch>> {
        let matches = Cli::command().try_get_matches_from(std::iter::once("msb").chain(args.iter().copied()))?;
        let _ = Cli::from_arg_matches(&matches)?;
        patches(&matches)
    }

    #[test]
    fn flags_keep_their_order_and_syntax() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("f");
        std::fs::write(&host, "x").unwrap();
        let file_arg = format!("{}:/app/f:0755", host.display());
        let dir_arg = format!("{}:/app/d", dir.path().display());
        let got = parse_all(&[
            "--delete",
            "/etc/motd",
            "--text",
            "/etc/app.conf=a=b",
            "--file",
            &file_arg,
            "--mkdir",
            "/data:0700",
            "--symlink",
            "/usr/bin/python3:/usr/local/bin/py",
            "--append",
            "/etc/app.conf=\nmore",
            "--file",
            &dir_arg,
        ])
        .unwrap();
        assert_eq!(
            got,
            vec![
                Patch::remove("/etc/motd"),
                Patch::text("/etc/app.conf", "a=b").replacing(),
                Patch::copy_file(&host, "/app/f").replacing().with_mode(0o755),
                Patch::mkdir("/data").with_mode(0o700),
                Patch::symlink("/usr/bin/python3", "/usr/local/bin/py").replacing(),
                Patch::append("/etc/app.conf", "\nmore"),
                Patch::copy_dir(dir.path(), "/app/d").replacing(),
            ]
        );
    }

    #[test]
    fn bad_values_are_clear_errors() {
        for (args, fragment) in [
            (vec!["--text", "no-equals"], "GUEST=CONTENT"),
            (vec!["--text", "relative=x"], "must be absolute"),
            (vec!["--delete", "/a/../b"], "'..'"),
            (vec!["--mkdir", "/d:999"], "not octal"),
            (vec!["--symlink", "target-only"], "TARGET:LINK"),
            (vec!["--file", "/nonexistent/x:/y"], "/nonexistent/x"),
        ] {
            let err = format!("{:#}", parse_all(&args).unwrap_err());
            assert!(err.contains(fragment), "{args:?}: {err}");
        }
    }
}
