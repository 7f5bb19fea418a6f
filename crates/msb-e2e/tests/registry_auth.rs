//! `msb registry login/logout/ls` and authenticated pulls against a second `docker-registry`
//! that requires HTTP Basic credentials (htpasswd), filled from the fixture registry; the
//! SDK builder's own credentials.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use base64::Engine;
use msb_e2e::stdout_of as ok;
use msb_e2e::{registry, Sandbox};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const USER: &str = "msb-user";
const PASSWORD: &str = "correct horse:battery";

/// A `docker-registry` with htpasswd auth on a free loopback port; killed when dropped.
struct AuthRegistry {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl Drop for AuthRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl AuthRegistry {
    /// Starts it with one user, and copies the busybox fixture from `fixture` into it.
    fn start(fixture: &str) -> AuthRegistry {
        let dir = tempfile::Builder::new().prefix("msb-auth-registry").tempdir().unwrap();
        let hash = bcrypt::hash_with_result(PASSWORD, 4)
            .unwrap()
            .format_for_version(bcrypt::Version::TwoY);
        let htpasswd = dir.path().join("htpasswd");
        std::fs::write(&htpasswd, format!("{USER}:{hash}\n")).unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let quote = |p: &Path| serde_json::to_string(&p.to_string_lossy()).unwrap();
        let config = dir.path().join("config.yml");
        let yaml = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: {addr}\nauth:\n  htpasswd:\n    realm: msb\n    path: {}\n",
            quote(&dir.path().join("storage")),
            quote(&htpasswd)
        );
        std::fs::write(&config, yaml).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting docker-registry (cargo xtask registry installs it)");
        let mut reg = AuthRegistry { child, addr, dir };
        reg.wait_until_listening();
        reg.push_busybox(fixture);
        reg
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&self.addr).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("docker-registry exited with {status}:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "registry did not listen:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn push_busybox(&self, fixture: &str) {
        let out = Command::new("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false"])
            .arg(format!("--dest-creds={USER}:{PASSWORD}"))
            .arg(format!("docker://{fixture}/msb-test/busybox:latest"))
            .arg(format!("docker://{}/msb-test/busybox:latest", self.addr))
            .output()
            .expect("running skopeo");
        assert!(
            out.status.success(),
            "skopeo copy: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    fn image(&self) -> String {
        format!("{}/msb-test/busybox", self.addr)
    }
}

/// `msb ARGS` with `DOCKER_CONFIG` pointing at `docker_dir` (so the user's own is not read),
/// feeding `stdin`.
fn msb(sb: &Sandbox, docker_dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = sb
        .msb()
        .env("DOCKER_CONFIG", docker_dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running msb");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_denied(out: &Output, host: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(err.contains("denied"), "{err}");
    assert!(err.contains(&format!("msb registry login {host}")), "{err}");
}

#[test]
fn login_is_checked_saved_privately_used_by_pull_and_undone_by_logout() {
    let Some(fixture) = registry() else { return };
    let reg = AuthRegistry::start(&fixture);
    let sb = Sandbox::new();
    let docker = tempfile::tempdir().unwrap();
    let d = docker.path();
    let creds = sb.home().join("credentials.json");

    assert_denied(&msb(&sb, d, &["pull", &reg.image()], ""), &reg.addr);

    let login = ["registry", "login", &reg.addr, "-u", USER, "--password-stdin"];
    let wrong = msb(&sb, d, &login, "wrong\n");
    assert_eq!(wrong.status.code(), Some(125), "{}", stderr(&wrong));
    assert!(stderr(&wrong).contains("rejected"), "{}", stderr(&wrong));
    assert!(!creds.exists(), "a rejected login was saved");

    let no_password = msb(&sb, d, &["registry", "login", &reg.addr, "-u", USER], "");
    assert_eq!(no_password.status.code(), Some(125));
    assert!(
        stderr(&no_password).contains("--password-stdin"),
        "{}",
        stderr(&no_password)
    );

    ok(&msb(&sb, d, &login, &format!("{PASSWORD}\n")));
    let mode = std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let saved = std::fs::read(&creds).unwrap();

    // A later wrong password leaves the saved login alone.
    assert!(!msb(&sb, d, &login, "wrong\n").status.success());
    assert_eq!(std::fs::read(&creds).unwrap(), saved);

    let table = ok(&msb(&sb, d, &["registry", "ls"], ""));
    assert!(
        table.contains(&reg.addr) && table.contains(USER) && table.contains("msb"),
        "{table}"
    );
    let json = ok(&msb(&sb, d, &["registry", "ls", "--json"], ""));
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rows[0]["registry"], reg.addr.as_str());
    assert_eq!(rows[0]["username"], USER);
    assert_eq!(rows[0]["source"], "msb");
    for shown in [&table, &json] {
        assert!(!shown.contains(PASSWORD) && !shown.contains("battery"), "{shown}");
    }

    assert!(ok(&msb(&sb, d, &["pull", &reg.image()], "")).contains("Pulled"));

    ok(&msb(&sb, d, &["registry", "logout", &reg.addr], ""));
    assert!(ok(&msb(&sb, d, &["registry", "ls", "--json"], "")).trim() == "[]");
    assert_denied(&msb(&sb, d, &["pull", &reg.image()], ""), &reg.addr);
}

#[test]
fn docker_config_credentials_are_used_when_msb_has_none() {
    let Some(fixture) = registry() else { return };
    let reg = AuthRegistry::start(&fixture);
    let sb = Sandbox::new();
    let docker = tempfile::tempdir().unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let config = serde_json::json!({
        "auths": { format!("http://{}", reg.addr): { "auth": auth } },
        "credHelpers": { "gcr.io": "gcloud" },
    });
    std::fs::write(docker.path().join("config.json"), config.to_string()).unwrap();

    assert!(ok(&msb(&sb, docker.path(), &["pull", &reg.image()], "")).contains("Pulled"));
    let json = ok(&msb(&sb, docker.path(), &["registry", "ls", "--json"], ""));
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rows[0]["registry"], reg.addr.as_str());
    assert_eq!(rows[0]["source"], "docker-config");
    assert!(!sb.home().join("credentials.json").exists());

    // A broken Docker config is an error naming the file, not a silent anonymous pull.
    std::fs::write(docker.path().join("config.json"), "{ nope").unwrap();
    let out = msb(&sb, docker.path(), &["pull", &reg.image()], "");
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("config.json is malformed"), "{}", stderr(&out));
}

#[test]
fn a_docker_credential_helper_is_asked_and_config_json_entries_come_before_it() {
    let Some(fixture) = registry() else { return };
    let reg = AuthRegistry::start(&fixture);
    let sb = Sandbox::new();
    let docker = tempfile::tempdir().unwrap();
    // A helper that knows the registry, and records that it was asked for it.
    let bin = tempfile::tempdir().unwrap();
    let asked = bin.path().join("asked");
    let helper = bin.path().join("docker-credential-test");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\necho \"$server\" >> {}\n\
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' \"$server\"\n",
            asked.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = serde_json::json!({ "credHelpers": { reg.addr.clone(): "test" } });
    std::fs::write(docker.path().join("config.json"), config.to_string()).unwrap();
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    let pull = |sb: &Sandbox| {
        sb.msb()
            .env("DOCKER_CONFIG", docker.path())
            .env("PATH", &path)
            .args(["pull", "-q", &reg.image()])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    ok(&pull(&sb));
    assert_eq!(
        std::fs::read_to_string(&asked).unwrap().trim(),
        reg.addr,
        "the helper was not asked"
    );
    // msb's config.json entry wins over the helper: a wrong password there is used (and
    // refused), the helper is not asked again.
    let other = Sandbox::new();
    let json = serde_json::json!({"registries": {"hosts": {reg.addr.clone(): {
        "auth": {"username": USER, "password_env": "MSB_TEST_REGISTRY_PASSWORD"}}}}});
    std::fs::write(other.home().join("config.json"), json.to_string()).unwrap();
    let out = other
        .msb()
        .env("DOCKER_CONFIG", docker.path())
        .env("PATH", &path)
        .env("MSB_TEST_REGISTRY_PASSWORD", "wrong")
        .args(["pull", "-q", &reg.image()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_denied(&out, &reg.addr);
    assert_eq!(std::fs::read_to_string(&asked).unwrap().lines().count(), 1);
    // An invalid config.json is an error naming the field, not silent defaults.
    std::fs::write(
        other.home().join("config.json"),
        r#"{"sandbox_defaults": {"cpus": "two"}}"#,
    )
    .unwrap();
    let out = other.output(&["pull", "-q", &reg.image()]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("sandbox_defaults.cpus"), "{}", stderr(&out));
}

/// The SDK's `registry(|r| r.auth(..))` logs in with what it is given: a wrong password is
/// refused by the registry (and never shown), the right one pulls and boots the image.
#[tokio::test]
async fn sdk_create_pulls_with_the_credentials_given_to_the_builder() {
    let Some(fixture) = registry() else { return };
    if !msb_e2e::vm_available() {
        return;
    }
    let reg = AuthRegistry::start(&fixture);
    let sb = Sandbox::new();
    let msb = microsandbox::Microsandbox::at(sb.home());
    let image = reg.image();
    let refused = msb
        .builder("wrong")
        .image(image.as_str())
        .registry(|r| r.auth(USER, "not the password"))
        .create()
        .await
        .expect_err("a wrong password was accepted");
    let said = refused.to_string();
    assert!(said.contains("denied"), "{said}");
    assert!(!said.contains("not the password"), "{said}");
    let booted = msb
        .builder("right")
        .image(image.as_str())
        .registry(|r| r.auth(USER, PASSWORD))
        .create()
        .await
        .unwrap();
    let out = booted.exec("echo", ["pulled"]).await.unwrap();
    assert_eq!(out.stdout_text(), "pulled\n");
    booted.stop().await.unwrap();
    sb.assert_no_vm_left();
}
