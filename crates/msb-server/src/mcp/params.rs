//! The arguments of the MCP tools: each struct's JSON schema (with these doc comments as
//! field descriptions) is what an agent sees in `tools/list`.

use crate::api::exec::ExecRequest;
use crate::api::sandboxes::{CreateSandbox, PortProtocol, PortSpec};
use microsandbox::Mount;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Arguments of `sandbox_create`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateArgs {
    /// Name of the new sandbox (1-63 of a-z, 0-9 and '-'); a name like 'msb-1a2b3c4d' is
    /// generated when absent. Every other sandbox_* tool takes this name.
    pub name: Option<String>,
    /// OCI image to boot, e.g. 'python', 'alpine', 'node:22', 'ghcr.io/org/image:tag'
    /// (pulled when missing). Give exactly one of 'image' and 'rootfs'.
    pub image: Option<String>,
    /// Absolute host path of a root filesystem directory (or disk image) to boot instead of
    /// an image.
    pub rootfs: Option<String>,
    /// Virtual CPUs (default 1).
    pub cpus: Option<u32>,
    /// Memory in MiB (default 512).
    pub memory_mib: Option<u32>,
    /// Environment variables of every process in the sandbox.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory of its processes.
    pub workdir: Option<String>,
    /// Guest user its processes run as ('name', 'uid' or 'uid:gid').
    pub user: Option<String>,
    /// Its hostname (default: its name).
    pub hostname: Option<String>,
    /// A long-running command to start in the background (replaces the image's command),
    /// e.g. a server; leave out to just get a sandbox to exec in.
    pub command: Option<Vec<String>>,
    /// Free-form labels, shown by sandbox_list.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Named volumes (see volume_create) to mount; they outlive the sandbox.
    #[serde(default)]
    pub volumes: Vec<VolumeMount>,
    /// Guest ports published on the host.
    #[serde(default)]
    pub ports: Vec<PortArg>,
    /// No network interface at all.
    #[serde(default)]
    pub no_network: bool,
    /// Stop the sandbox after this many seconds without an exec or connection.
    pub idle_timeout_secs: Option<u64>,
    /// Stop the sandbox after this many seconds whatever happens.
    pub max_duration_secs: Option<u64>,
    /// Remove the sandbox (and everything it wrote) when it stops.
    #[serde(default)]
    pub ephemeral: bool,
    /// Replace an existing sandbox of the same name instead of failing.
    #[serde(default)]
    pub replace: bool,
}

/// A named volume mounted in a sandbox.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeMount {
    /// The volume's name.
    pub volume: String,
    /// Absolute guest path where it appears, e.g. '/data'.
    pub guest: String,
    /// Mount it read-only.
    #[serde(default)]
    pub readonly: bool,
}

/// A published port.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortArg {
    /// Port on the host (127.0.0.1).
    pub host: u16,
    /// Port in the guest.
    pub guest: u16,
    /// 'tcp' (default) or 'udp'.
    #[serde(default)]
    pub protocol: Protocol,
}

/// A port's transport.
#[derive(Debug, Default, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl CreateArgs {
    /// The REST layer's create request these arguments describe.
    pub fn into_request(self) -> CreateSandbox {
        let mounts = self.volumes.into_iter().map(|v| Mount::Volume {
            name: v.volume,
            guest: v.guest,
            readonly: v.readonly,
        });
        let ports = self.ports.into_iter().map(|p| PortSpec {
            host: p.host,
            guest: p.guest,
            protocol: match p.protocol {
                Protocol::Tcp => PortProtocol::Tcp,
                Protocol::Udp => PortProtocol::Udp,
            },
            host_ip: None,
        });
        CreateSandbox {
            name: self.name,
            image: self.image,
            rootfs: self.rootfs,
            cpus: self.cpus,
            memory_mib: self.memory_mib,
            env: self.env,
            workdir: self.workdir,
            user: self.user,
            hostname: self.hostname,
            command: self.command,
            labels: self.labels,
            mounts: mounts.collect(),
            ports: ports.collect(),
            no_network: self.no_network,
            idle_timeout_secs: self.idle_timeout_secs,
            max_duration_secs: self.max_duration_secs,
            ephemeral: self.ephemeral,
            replace: self.replace,
            ..CreateSandbox::default()
        }
    }
}

/// Arguments of `sandbox_exec`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecArgs {
    /// The running sandbox.
    pub name: String,
    /// Program and arguments, run directly (no shell), e.g. ["python3", "-c", "print(1)"].
    pub cmd: Vec<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory.
    pub workdir: Option<String>,
    /// Guest user to run as.
    pub user: Option<String>,
    /// Text fed to its standard input (default: none).
    pub stdin: Option<String>,
    /// Kill it after this many seconds (the call then fails with kind 'timeout').
    pub timeout_secs: Option<u64>,
}

/// Arguments of `sandbox_shell`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellArgs {
    /// The running sandbox.
    pub name: String,
    /// A script for the sandbox's shell (`/bin/sh -c SCRIPT`): pipes, redirections, `&&`.
    pub script: String,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory.
    pub workdir: Option<String>,
    /// Guest user to run as.
    pub user: Option<String>,
    /// Text fed to its standard input (default: none).
    pub stdin: Option<String>,
    /// Kill it after this many seconds (the call then fails with kind 'timeout').
    pub timeout_secs: Option<u64>,
}

impl ExecArgs {
    /// The sandbox and the REST layer's exec request.
    pub fn into_request(self) -> (String, ExecRequest) {
        let req = ExecRequest {
            cmd: Some(self.cmd),
            shell: None,
            env: self.env,
            workdir: self.workdir,
            user: self.user,
            stdin: self.stdin,
            timeout_secs: self.timeout_secs,
        };
        (self.name, req)
    }
}

impl ShellArgs {
    /// The sandbox and the REST layer's exec request.
    pub fn into_request(self) -> (String, ExecRequest) {
        let req = ExecRequest {
            cmd: None,
            shell: Some(self.script),
            env: self.env,
            workdir: self.workdir,
            user: self.user,
            stdin: self.stdin,
            timeout_secs: self.timeout_secs,
        };
        (self.name, req)
    }
}

/// Arguments of `sandbox_metrics`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsArgs {
    /// The running sandbox; leave out for every running sandbox.
    pub name: Option<String>,
}

/// Arguments of `sandbox_stop`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StopArgs {
    /// The sandbox's name.
    pub name: String,
    /// Seconds its processes get after the stop signal before the VM is killed (default 10).
    pub timeout_secs: Option<u64>,
}

/// Arguments of `sandbox_remove` and `volume_remove`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveArgs {
    /// The sandbox's (or volume's) name.
    pub name: String,
    /// For a sandbox: stop it first if it is running. For a volume: remove it even while
    /// sandboxes mount it.
    #[serde(default)]
    pub force: bool,
}

/// A guest path in a running sandbox.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PathArgs {
    /// The running sandbox.
    pub name: String,
    /// Absolute guest path.
    pub path: String,
}

/// How file content is carried.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// UTF-8 text.
    #[default]
    Text,
    /// Base64 of the raw bytes (binary files).
    Base64,
}

/// Arguments of `sandbox_fs_read`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadArgs {
    /// The running sandbox.
    pub name: String,
    /// Absolute guest path of a file.
    pub path: String,
    /// 'text' (default; fails on a file that is not UTF-8) or 'base64' (any file).
    #[serde(default)]
    pub encoding: Encoding,
}

/// Arguments of `sandbox_fs_write`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteArgs {
    /// The running sandbox.
    pub name: String,
    /// Absolute guest path; missing parent directories are created, an existing file is
    /// replaced.
    pub path: String,
    /// The file's new content.
    pub content: String,
    /// 'text' (default: 'content' is written as UTF-8) or 'base64' ('content' is base64 of
    /// the bytes to write).
    #[serde(default)]
    pub encoding: Encoding,
    /// Permission bits of a new file, octal, e.g. '755' (default '644').
    pub mode: Option<String>,
}

/// Arguments of `sandbox_fs_remove`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveFileArgs {
    /// The running sandbox.
    pub name: String,
    /// Absolute guest path.
    pub path: String,
    /// Remove a directory and everything below it (needed for any directory).
    #[serde(default)]
    pub recursive: bool,
}

/// Arguments of `volume_create`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeCreateArgs {
    /// The new volume's name.
    pub name: String,
    /// Size limit in MiB (the volume is then an ext4 disk that one running sandbox at a time
    /// mounts read-write); leave out for an unlimited host directory.
    pub quota_mib: Option<u32>,
    /// Free-form labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}
