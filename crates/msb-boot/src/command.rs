//! What runs in a sandbox: a request merged with the sandbox's settings and its image's
//! defaults, by the rules docker uses (later settings win: image, then sandbox, then the
//! request itself).

use msb_protocol::{ExecRequest, StdinMode, WindowSize};
use msb_types::{Field, ImageConfig, Rlimit, SandboxSpec, SpecError};

/// Per-process settings on top of the sandbox's. Fields can be set directly, or chained in
/// the reference's builder style: `ExecOptions::new().cwd("/app").env("A", "1").timeout(d)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// Environment; wins over the sandbox's and the image's by name.
    pub env: Vec<(String, String)>,
    /// Working directory; else the sandbox's, the image's, `/`.
    pub workdir: Option<String>,
    /// User; else the sandbox's, the image's, root.
    pub user: Option<String>,
    /// Run on a terminal of this size.
    pub tty: Option<WindowSize>,
    /// Where stdin comes from (default: nothing, so a program that reads it gets EOF).
    pub stdin: Stdin,
    /// Kill the process if it has not ended after this long, and report a timeout.
    pub timeout: Option<std::time::Duration>,
    /// Resource limits; win over the sandbox's by resource.
    pub rlimits: Vec<Rlimit>,
    /// Keys that detach an attached terminal session, leaving the process running
    /// (default `ctrl-]`; only on a terminal).
    pub detach_keys: Option<msb_types::DetachKeys>,
}

/// A process's standard input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Stdin {
    /// `/dev/null`.
    #[default]
    Null,
    /// A pipe the caller writes (streaming execs).
    Pipe,
    /// These bytes, then end of file.
    Bytes(Vec<u8>),
}

impl ExecOptions {
    /// No settings beyond the sandbox's.
    pub fn new() -> ExecOptions {
        ExecOptions::default()
    }

    /// The working directory.
    pub fn cwd(mut self, dir: impl Into<String>) -> Self {
        self.workdir = Some(dir.into());
        self
    }

    /// The user (`name`, `uid`, `name:group`, `uid:gid`).
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.into()));
        self
    }

    /// Sets several environment variables.
    pub fn envs<K: Into<String>, V: Into<String>>(self, vars: impl IntoIterator<Item = (K, V)>) -> Self {
        vars.into_iter().fold(self, |o, (k, v)| o.env(k, v))
    }

    /// Kills the process after `limit` and reports a timeout.
    pub fn timeout(mut self, limit: std::time::Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// stdin is `/dev/null` (the default).
    pub fn stdin_null(mut self) -> Self {
        self.stdin = Stdin::Null;
        self
    }

    /// stdin is a pipe the caller writes.
    pub fn stdin_pipe(mut self) -> Self {
        self.stdin = Stdin::Pipe;
        self
    }

    /// stdin is `bytes`, then end of file.
    pub fn stdin_bytes(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Stdin::Bytes(bytes.into());
        self
    }

    /// Runs on a terminal of this size (or not).
    pub fn tty(mut self, size: Option<WindowSize>) -> Self {
        self.tty = size;
        self
    }

    /// The keys that detach an attached terminal session.
    pub fn detach_keys(mut self, keys: msb_types::DetachKeys) -> Self {
        self.detach_keys = Some(keys);
        self
    }

    /// Limits `resource` to `n` (soft and hard).
    pub fn rlimit(self, resource: msb_types::RlimitResource, n: u64) -> Self {
        self.rlimit_range(resource, n, n)
    }

    /// Limits `resource` to `soft`, raisable to `hard` (checked when the process starts).
    pub fn rlimit_range(mut self, resource: msb_types::RlimitResource, soft: u64, hard: u64) -> Self {
        self.rlimits.retain(|l| l.resource != resource);
        self.rlimits.push(Rlimit { resource, soft, hard });
        self
    }
}

/// The sandbox's command (`msb run`): `args` replace the image's Cmd; the sandbox's
/// entrypoint, if set, replaces the image's Entrypoint (and then the image's Cmd is dropped).
pub fn run_request(spec: &SandboxSpec, args: Vec<String>, opts: ExecOptions) -> Result<ExecRequest, SpecError> {
    let image = image_config(spec);
    let (entrypoint, cmd) = match &spec.entrypoint {
        Some(ep) => (ep.clone(), args),
        None => {
            let cmd = if args.is_empty() {
                image.cmd.clone().unwrap_or_default()
            } else {
                args
            };
            (image.entrypoint.clone().unwrap_or_default(), cmd)
        }
    };
    let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if argv.is_empty() {
        return Err(SpecError::new(
            Field::Command,
            "no command given and the image defines no Entrypoint or Cmd: add `-- COMMAND`",
        ));
    }
    exec_request(spec, argv, opts)
}

/// A process started in a running sandbox (`msb exec`): `argv` as given.
pub fn exec_request(spec: &SandboxSpec, argv: Vec<String>, opts: ExecOptions) -> Result<ExecRequest, SpecError> {
    if argv.is_empty() {
        return Err(SpecError::new(Field::Command, "no command given"));
    }
    let image = image_config(spec);
    let mut env: Vec<(String, String)> = image
        .env
        .iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.clone(), String::new()),
        })
        .collect();
    // A secret's variable holds its placeholder; the value stays on the host.
    let placeholders = spec
        .network
        .secrets
        .iter()
        .map(|s| (s.env.clone(), s.placeholder.clone()));
    for (key, value) in placeholders.chain(spec.env.iter().cloned()).chain(opts.env) {
        env.retain(|(k, _)| *k != key);
        env.push((key, value));
    }
    let workdir = opts
        .workdir
        .or_else(|| spec.workdir.clone())
        .or_else(|| image.working_dir.clone());
    if let Some(dir) = &workdir {
        if !dir.starts_with('/') {
            return Err(SpecError::new(
                Field::Workdir,
                format!("'{dir}' must be an absolute path"),
            ));
        }
    }
    for limit in &opts.rlimits {
        limit.validate()?;
    }
    Ok(ExecRequest {
        argv,
        env,
        workdir,
        user: opts.user.or_else(|| spec.user.clone()).or_else(|| image.user.clone()),
        tty: opts.tty,
        stdin: match opts.stdin {
            Stdin::Null => StdinMode::Null,
            Stdin::Pipe | Stdin::Bytes(_) => StdinMode::Pipe,
        },
        rlimits: msb_types::merge_rlimits(&spec.rlimits, &opts.rlimits),
    })
}

/// The signal that asks the sandbox's processes to stop: the sandbox's, else its image's
/// `StopSignal` (when valid), else SIGTERM.
pub fn stop_signal(spec: &SandboxSpec) -> i32 {
    const SIGTERM: i32 = 15;
    spec.stop_signal
        .iter()
        .chain(image_config(spec).stop_signal.iter())
        .find_map(|s| msb_types::parse_signal(s, Field::StopSignal).ok())
        .unwrap_or(SIGTERM)
}

fn image_config(spec: &SandboxSpec) -> ImageConfig {
    spec.image.as_ref().map(|i| i.config.clone()).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use msb_types::{PinnedImage, RootSpec};

    fn spec() -> SandboxSpec {
        let mut spec = SandboxSpec::new("s", RootSpec::Oci("img".into()));
        spec.image = Some(PinnedImage {
            reference: "img".into(),
            manifest_digest: "sha256:00".into(),
            config: ImageConfig {
                env: vec!["PATH=/usr/bin".into(), "A=image".into(), "B=image".into()],
                entrypoint: Some(vec!["/entry".into()]),
                cmd: Some(vec!["default".into()]),
                working_dir: Some("/app".into()),
                user: Some("1000".into()),
                ..Default::default()
            },
        });
        spec
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn docker_rules_for_entrypoint_and_cmd() {
        let run = |args: &[&str], ep: Option<&[&str]>| {
            let mut s = spec();
            s.entrypoint = ep.map(strings);
            run_request(&s, strings(args), ExecOptions::default()).unwrap().argv
        };
        assert_eq!(run(&[], None), ["/entry", "default"]);
        assert_eq!(run(&["x", "y"], None), ["/entry", "x", "y"]);
        assert_eq!(run(&[], Some(&["sh"])), ["sh"]);
        assert_eq!(run(&["-c", "true"], Some(&["sh"])), ["sh", "-c", "true"]);
        let exec = exec_request(&spec(), strings(&["ls", "-l"]), ExecOptions::default()).unwrap();
        assert_eq!(exec.argv, ["ls", "-l"], "exec runs exactly what it is given");
    }

    #[test]
    fn request_then_sandbox_then_image_settings_win() {
        let mut s = spec();
        s.env = vec![("A".into(), "sandbox".into())];
        s.workdir = Some("/srv".into());
        let opts = ExecOptions {
            env: vec![("B".into(), "exec".into()), ("C".into(), "3".into())],
            ..Default::default()
        };
        let req = exec_request(&s, strings(&["true"]), opts).unwrap();
        let env: Vec<(&str, &str)> = req.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(env, [("PATH", "/usr/bin"), ("A", "sandbox"), ("B", "exec"), ("C", "3")]);
        // A secret's variable holds its placeholder, never a value.
        s.network.secrets.push(msb_types::SecretSpec {
            env: "API_KEY".into(),
            placeholder: "msb_0123456789abcdef".into(),
            hosts: vec!["api.example.com".into()],
            inject: Default::default(),
        });
        let req = exec_request(&s, strings(&["true"]), ExecOptions::default()).unwrap();
        assert!(req.env.contains(&("API_KEY".into(), "msb_0123456789abcdef".into())));
        assert_eq!(
            (req.workdir.as_deref(), req.user.as_deref()),
            (Some("/srv"), Some("1000"))
        );
        let opts = ExecOptions {
            workdir: Some("/".into()),
            user: Some("0".into()),
            ..Default::default()
        };
        let req = exec_request(&s, strings(&["true"]), opts).unwrap();
        assert_eq!((req.workdir.as_deref(), req.user.as_deref()), (Some("/"), Some("0")));
    }

    #[test]
    fn the_stop_signal_comes_from_the_sandbox_then_the_image() {
        let mut s = spec();
        assert_eq!(stop_signal(&s), 15);
        if let Some(image) = s.image.as_mut() {
            image.config.stop_signal = Some("SIGQUIT".into());
        }
        assert_eq!(stop_signal(&s), 3);
        s.stop_signal = Some("INT".into());
        assert_eq!(stop_signal(&s), 2);
    }

    #[test]
    fn nothing_to_run_or_a_relative_workdir_is_an_error() {
        let bare = SandboxSpec::new("s", RootSpec::Bind("/r".into()));
        assert!(run_request(&bare, Vec::new(), ExecOptions::default()).is_err());
        assert!(exec_request(&bare, Vec::new(), ExecOptions::default()).is_err());
        let opts = ExecOptions {
            workdir: Some("tmp".into()),
            ..Default::default()
        };
        assert!(exec_request(&bare, strings(&["true"]), opts).is_err());
    }
}
