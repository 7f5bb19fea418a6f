//! `msb cp SRC DST`: files and trees between the host and a sandbox, in docker's style: a
//! running one through its agent, a stopped one with a directory root on the host. One side is `NAME:PATH`; the other a host path, or `-` for a tar stream on
//! stdin/stdout. A directory destination that exists takes the source inside it
//! (`SRC/.` copies the source's contents instead); one that does not becomes the copy.

use super::fs::Files::{self, AtRest, Guest};
use super::fs::{guest_fs, stdin_chunks};
use crate::output::QuietArg;
use anyhow::{bail, Context, Result};
use microsandbox::{CopyOptions, CopyReport, FsEntry, FsErrorKind, FsKind, MicrosandboxError};
use std::io::Write;
use std::path::{Path, PathBuf};

/// `msb cp` arguments.
#[derive(clap::Args, Debug)]
pub struct CpArgs {
    /// What to copy: a host path, `NAME:PATH` in a sandbox, or `-` (a tar on stdin).
    src: String,
    /// Where to: a host path, `NAME:PATH`, or `-` (a tar on stdout).
    dst: String,
    /// Archive mode: keep owners (uid/gid) as the source has them.
    #[arg(short, long)]
    archive: bool,
    /// Copy a file met again under another name as a hard link, not a second file.
    #[arg(short = 'H', long)]
    hard_links: bool,
    /// Follow a symlink given as a host source (its target is copied, not the link).
    #[arg(short = 'L', long)]
    follow_link: bool,
    /// Act in the sandbox as this user (`uid[:gid]` or `name[:group]`) instead of root.
    #[arg(short, long)]
    user: Option<String>,
    #[command(flatten)]
    quiet: QuietArg,
}

/// One side of a copy.
#[derive(Debug, PartialEq, Eq)]
enum Side {
    Host(PathBuf),
    Guest { name: String, path: String },
    Stream,
}

/// `-` is a stream; `NAME:PATH` is a sandbox's when NAME is a valid sandbox name (a host
/// path with a colon can be written `./a:b`); anything else is a host path.
fn side(arg: &str) -> Side {
    if arg == "-" {
        return Side::Stream;
    }
    if !arg.starts_with(['/', '.']) {
        if let Some((name, path)) = arg.split_once(':') {
            if microsandbox::validate_name(name).is_ok() {
                return Side::Guest {
                    name: name.to_string(),
                    path: path.to_string(),
                };
            }
        }
    }
    Side::Host(PathBuf::from(arg))
}

/// Runs `msb cp`.
pub async fn run(args: CpArgs) -> Result<i32> {
    args.quiet.apply();
    let opts = CopyOptions {
        keep_owners: args.archive,
        hard_links: args.hard_links,
    };
    let (done, to) = match (side(&args.src), side(&args.dst)) {
        (Side::Guest { name, path }, dst) => {
            let files = Files::of(&name, &args.user).await?;
            match dst {
                Side::Stream => return tar_out(&files, &path).await,
                Side::Host(dst) => {
                    let found = stat(&files, trim_contents(&path)).await;
                    let target = host_target(&name, &path, found, &dst)?;
                    let src = trim_contents(&path);
                    let done = match &files {
                        Guest(sb, user) => guest_fs(sb, user).copy_to_host_with(src, &target, opts).await?,
                        AtRest(host) => host.copy_to_host(src, &target, opts)?,
                    };
                    (done, target.display().to_string())
                }
                Side::Guest { .. } => bail!("copies between two sandboxes are not supported: copy through the host"),
            }
        }
        (src, Side::Guest { name, path }) => {
            let files = Files::of(&name, &args.user).await?;
            match src {
                Side::Stream => return tar_in(&files, &path, opts.keep_owners).await,
                Side::Host(src) => {
                    let src = match args.follow_link {
                        true => src
                            .canonicalize()
                            .with_context(|| format!("following {}", src.display()))?,
                        false => src,
                    };
                    let found = stat(&files, &path).await;
                    let target = guest_target(&src, &path, found)?;
                    let done = match &files {
                        Guest(sb, user) => guest_fs(sb, user).copy_from_host_with(&src, &target, opts).await?,
                        AtRest(host) => host.copy_from_host(&src, &target, opts)?,
                    };
                    (done, format!("{name}:{target}"))
                }
                Side::Guest { .. } => unreachable!("matched above"),
            }
        }
        _ => {
            bail!("one side of `msb cp` must be NAME:PATH in a sandbox (a host path holding ':' can be written ./a:b)")
        }
    };
    report(&done, &to);
    Ok(0)
}

/// The entry at `path` in the sandbox (a symlink itself).
async fn stat(files: &Files, path: &str) -> Result<FsEntry, MicrosandboxError> {
    match files {
        Guest(sb, user) => guest_fs(sb, user).stat(path).await,
        AtRest(host) => host.stat(path),
    }
}

/// `SRC/.` names the source's contents (docker's rule).
fn is_contents(path: &str) -> bool {
    path.ends_with("/.") || path == "."
}

fn trim_contents(path: &str) -> &str {
    match path.strip_suffix("/.") {
        Some("") => "/",
        Some(p) => p,
        None => path,
    }
}

/// The last name of a path, as the copy's name inside a directory destination.
fn last_name(path: &str) -> Result<&str> {
    Path::new(trim_contents(path).trim_end_matches('/'))
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{path:?} names nothing to copy"))
}

/// Where a guest source (`found` at `src`) lands on the host.
fn host_target(name: &str, src: &str, found: Result<FsEntry, MicrosandboxError>, dst: &Path) -> Result<PathBuf> {
    let entry = found.map_err(|e| match e {
        MicrosandboxError::Fs(f) if f.kind == FsErrorKind::NotFound => {
            anyhow::anyhow!("{name}:{src}: no such file or directory in the sandbox")
        }
        e => e.into(),
    })?;
    let src_dir = entry.kind == FsKind::Dir;
    match std::fs::metadata(dst) {
        Ok(meta) if meta.is_dir() => {
            // `.`, `..` or a symlink to a directory: the directory itself is meant.
            let dir = dst
                .canonicalize()
                .with_context(|| format!("resolving {}", dst.display()))?;
            match is_contents(src) {
                true => Ok(dir),
                false => Ok(dir.join(last_name(src)?)),
            }
        }
        Ok(_) if src_dir => bail!("{}: cannot copy a directory onto a file", dst.display()),
        Ok(_) => Ok(dst.to_path_buf()),
        Err(_) if dst.to_string_lossy().ends_with('/') => {
            bail!("{}: no such directory", dst.display())
        }
        Err(_) => Ok(dst.to_path_buf()),
    }
}

/// Where a host source lands in the guest (`found` is what is at `dst`).
fn guest_target(src: &Path, dst: &str, found: Result<FsEntry, MicrosandboxError>) -> Result<String> {
    let meta = std::fs::symlink_metadata(src).with_context(|| format!("{}: cannot read it", src.display()))?;
    let src_text = src.to_string_lossy();
    let there = match found {
        Ok(entry) => Some(entry.kind),
        Err(MicrosandboxError::Fs(f)) if f.kind == FsErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    let dst_trimmed = match dst.trim_end_matches('/') {
        "" => "/",
        d => d,
    };
    match there {
        Some(FsKind::Dir) if is_contents(&src_text) => Ok(dst_trimmed.to_string()),
        Some(FsKind::Dir) => {
            let name = last_name(&src_text)?;
            Ok(format!("{}/{name}", dst_trimmed.trim_end_matches('/')))
        }
        Some(_) if meta.is_dir() => bail!("{dst}: cannot copy a directory onto a file"),
        None if dst.ends_with('/') && !meta.is_dir() => bail!("{dst}: no such directory in the sandbox"),
        _ => Ok(dst_trimmed.to_string()),
    }
}

/// `msb cp NAME:PATH -`: the tar on stdout.
async fn tar_out(files: &Files, path: &str) -> Result<i32> {
    let mut stdout = std::io::stdout().lock();
    match files {
        Guest(sb, user) => {
            let mut stream = guest_fs(sb, user).read_tar(path).await?;
            while let Some(chunk) = stream.recv().await? {
                stdout.write_all(&chunk)?;
            }
        }
        AtRest(host) => host.read_tar(path, &mut stdout)?,
    }
    stdout.flush()?;
    Ok(0)
}

/// `msb cp - NAME:DIR`: a tar from stdin, unpacked into DIR.
async fn tar_in(files: &Files, dir: &str, keep_owners: bool) -> Result<i32> {
    match files {
        Guest(sb, user) => {
            let mut sink = guest_fs(sb, user).write_tar(dir, keep_owners).await?;
            let mut chunks = stdin_chunks();
            while let Some(chunk) = chunks.recv().await {
                sink.write(&chunk?).await?;
            }
            sink.close().await?;
        }
        AtRest(host) => {
            host.write_tar(dir, std::io::stdin().lock(), keep_owners)?;
        }
    }
    Ok(0)
}

fn report(done: &CopyReport, to: &str) {
    if !done.skipped.is_empty() {
        eprintln!(
            "msb: left out {} entr{} a copy cannot hold (devices, FIFOs, sockets): {}",
            done.skipped.len(),
            if done.skipped.len() == 1 { "y" } else { "ies" },
            done.skipped.join(", ")
        );
    }
    crate::output::notice(&format!(
        "copied {} entr{} ({} bytes) to {to}",
        done.entries,
        if done.entries == 1 { "y" } else { "ies" },
        done.bytes
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_are_told_apart_as_docker_does() {
        let guest = |n: &str, p: &str| Side::Guest {
            name: n.into(),
            path: p.into(),
        };
        assert_eq!(side("box:/app/a.py"), guest("box", "/app/a.py"));
        assert_eq!(side("-"), Side::Stream);
        assert_eq!(side("./a:b"), Side::Host("./a:b".into()));
        assert_eq!(side("/x:y"), Side::Host("/x:y".into()));
        assert_eq!(side("plain"), Side::Host("plain".into()));
        assert_eq!(side("bad name:/x"), Side::Host("bad name:/x".into()));
    }

    #[test]
    fn contents_and_last_names() {
        assert!(is_contents("/a/."));
        assert!(!is_contents("/a"));
        assert_eq!(trim_contents("/a/."), "/a");
        assert_eq!(trim_contents("/."), "/");
        assert_eq!(last_name("/a/b/").unwrap(), "b");
        assert_eq!(last_name("/a/b/.").unwrap(), "b");
        assert!(last_name("/").is_err());
    }
}
