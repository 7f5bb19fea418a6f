//! What runs in a sandbox: the user's command merged with the image's defaults, by the
//! rules docker uses.

use crate::{MicrosandboxError, MicrosandboxResult};
use msb_protocol::{ExecRequest, WindowSize};
use msb_types::ImageConfig;

/// What the user asked for, before image defaults apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunRequest {
    /// Arguments after `--`: replace the image's Cmd.
    pub args: Vec<String>,
    /// Replaces the image's Entrypoint (and then its Cmd is dropped, as docker does).
    pub entrypoint: Option<Vec<String>>,
    /// Environment; wins over the image's by name.
    pub env: Vec<(String, String)>,
    /// Working directory; else the image's, else `/`.
    pub workdir: Option<String>,
    /// User; else the image's, else root.
    pub user: Option<String>,
    /// Run on a terminal of this size.
    pub tty: Option<WindowSize>,
}

/// Builds the exec request for `req` on top of `image` (none for a plain directory root).
pub fn exec_request(image: Option<&ImageConfig>, req: RunRequest) -> MicrosandboxResult<ExecRequest> {
    let default = ImageConfig::default();
    let image = image.unwrap_or(&default);
    let (entrypoint, cmd) = match req.entrypoint {
        Some(ep) => (ep, req.args),
        None => {
            let cmd = if req.args.is_empty() {
                image.cmd.clone().unwrap_or_default()
            } else {
                req.args
            };
            (image.entrypoint.clone().unwrap_or_default(), cmd)
        }
    };
    let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if argv.is_empty() {
        return Err(MicrosandboxError::InvalidConfig(
            "no command given and the image defines no Entrypoint or Cmd: add `-- COMMAND`".into(),
        ));
    }
    let mut env: Vec<(String, String)> = image
        .env
        .iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.clone(), String::new()),
        })
        .collect();
    for (key, value) in req.env {
        env.retain(|(k, _)| *k != key);
        env.push((key, value));
    }
    Ok(ExecRequest {
        argv,
        env,
        workdir: req.workdir.or_else(|| image.working_dir.clone()),
        user: req.user.or_else(|| image.user.clone()),
        tty: req.tty,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageConfig {
        ImageConfig {
            env: vec!["PATH=/usr/bin".into(), "A=image".into()],
            entrypoint: Some(vec!["/entry".into()]),
            cmd: Some(vec!["default".into()]),
            working_dir: Some("/app".into()),
            user: Some("1000".into()),
            ..Default::default()
        }
    }

    #[test]
    fn docker_rules_for_entrypoint_and_cmd() {
        let run = |args: &[&str], ep: Option<&[&str]>| {
            let req = RunRequest {
                args: args.iter().map(|s| s.to_string()).collect(),
                entrypoint: ep.map(|e| e.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            };
            exec_request(Some(&image()), req).unwrap().argv
        };
        assert_eq!(run(&[], None), ["/entry", "default"]);
        assert_eq!(run(&["x", "y"], None), ["/entry", "x", "y"]);
        assert_eq!(run(&[], Some(&["sh"])), ["sh"]);
        assert_eq!(run(&["-c", "true"], Some(&["sh"])), ["sh", "-c", "true"]);
    }

    #[test]
    fn user_settings_win_over_image_defaults() {
        let req = RunRequest {
            args: vec!["true".into()],
            env: vec![("A".into(), "user".into()), ("B".into(), "2".into())],
            ..Default::default()
        };
        let exec = exec_request(Some(&image()), req).unwrap();
        assert_eq!(
            exec.env,
            [
                ("PATH".into(), "/usr/bin".into()),
                ("A".into(), "user".into()),
                ("B".into(), "2".into())
            ]
        );
        assert_eq!(
            (exec.workdir.as_deref(), exec.user.as_deref()),
            (Some("/app"), Some("1000"))
        );
        let req = RunRequest {
            args: vec!["true".into()],
            workdir: Some("/".into()),
            user: Some("0".into()),
            ..Default::default()
        };
        let exec = exec_request(Some(&image()), req).unwrap();
        assert_eq!((exec.workdir.as_deref(), exec.user.as_deref()), (Some("/"), Some("0")));
    }

    #[test]
    fn nothing_to_run_is_an_error() {
        assert!(exec_request(None, RunRequest::default()).is_err());
        let bare = ImageConfig::default();
        assert!(exec_request(Some(&bare), RunRequest::default()).is_err());
    }
}
