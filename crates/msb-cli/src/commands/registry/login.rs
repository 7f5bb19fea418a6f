//! `msb registry login`: check credentials against a registry, then save them.

use anyhow::{bail, Context, Result};
use microsandbox::registry::{self, LoginCheck};
use microsandbox::Paths;
use nix::sys::termios::{self, LocalFlags, SetArg};
use std::io::{BufRead, IsTerminal, Read, Write};
use std::os::fd::AsFd;

/// Arguments of `msb registry login`.
#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    /// Registry host, e.g. `ghcr.io`, `docker.io` or `127.0.0.1:5000`.
    host: String,
    /// Username.
    #[arg(short, long)]
    username: String,
    /// Read the password from standard input (one line; the trailing newline is dropped).
    #[arg(long)]
    password_stdin: bool,
    /// Talk plain HTTP to the registry (loopback registries always do).
    #[arg(long)]
    insecure: bool,
}

/// Reads the password, checks it with the registry and saves the login.
pub async fn run(paths: &Paths, args: LoginArgs) -> Result<i32> {
    let password = if args.password_stdin {
        password_from_stdin()?
    } else if std::io::stdin().is_terminal() {
        prompt_password(&format!("Password for {}@{}: ", args.username, args.host))?
    } else {
        bail!("no password: pipe it in with --password-stdin, or run on a terminal to be prompted for it");
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    let outcome = registry::login(paths, &args.host, &args.username, &password, args.insecure).await?;
    if outcome.check == LoginCheck::NotRequired {
        eprintln!(
            "msb: warning: {} asks for no credentials, so they could not be checked",
            outcome.registry
        );
    }
    println!(
        "Login succeeded: credentials for {} saved in {}",
        outcome.registry,
        outcome.file.display()
    );
    Ok(0)
}

/// All of stdin without its final line ending.
fn password_from_stdin() -> Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading the password from standard input")?;
    Ok(strip_line_end(text))
}

fn strip_line_end(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

/// Prompts on stderr and reads one line from the terminal on stdin without echoing it.
fn prompt_password(prompt: &str) -> Result<String> {
    let stdin = std::io::stdin();
    let saved = termios::tcgetattr(stdin.as_fd()).context("reading the terminal settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    termios::tcsetattr(stdin.as_fd(), SetArg::TCSAFLUSH, &quiet).context("turning off terminal echo")?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let restored = termios::tcsetattr(stdin.as_fd(), SetArg::TCSAFLUSH, &saved);
    read.context("reading the password from the terminal")?;
    restored.context("restoring terminal echo")?;
    Ok(strip_line_end(line))
}

#[cfg(test)]
mod tests {
    use super::strip_line_end;

    #[test]
    fn only_the_final_line_ending_is_dropped() {
        assert_eq!(strip_line_end("pw\n".into()), "pw");
        assert_eq!(strip_line_end("pw\r\n".into()), "pw");
        assert_eq!(strip_line_end("pw".into()), "pw");
        assert_eq!(strip_line_end(" pw \n\n".into()), " pw \n");
    }
}
