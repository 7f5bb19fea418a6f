#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use std::os::unix::fs::PermissionsExt;

fn basic(auth: RegistryAuth) -> Option<(String, String)> {
    match auth {
        RegistryAuth::Basic(u, p) => Some((u, p)),
        _ => None,
    }
}

fn write_docker(dir: &Path, json: &str) -> PathBuf {
    let path = dir.join("config.json");
    std::fs::write(&path, json).unwrap();
    path
}

#[test]
fn hosts_are_normalised() {
    for alias in [
        "docker.io",
        "index.docker.io",
        "registry-1.docker.io",
        "https://index.docker.io/v1/",
        "Docker.IO",
    ] {
        assert_eq!(normalize_host(alias).unwrap(), "docker.io", "{alias}");
    }
    assert_eq!(normalize_host("https://ghcr.io").unwrap(), "ghcr.io");
    assert_eq!(normalize_host("http://127.0.0.1:5000/v2/").unwrap(), "127.0.0.1:5000");
    assert_eq!(normalize_host(" Quay.io ").unwrap(), "quay.io");
    for bad in ["", "https://", "a b", "user@host"] {
        assert!(
            matches!(normalize_host(bad), Err(AuthError::InvalidHost { .. })),
            "{bad}"
        );
    }
}

#[test]
fn login_writes_a_private_file_and_logout_removes_the_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    login(&home, "index.docker.io", "alice", "s3cret").unwrap();
    login(&home, "127.0.0.1:5000", "bob", "pw").unwrap();
    let path = credentials_path(&home);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(&home).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(json["registries"]["docker.io"]["username"], "alice");
    assert_eq!(json["registries"]["docker.io"]["password"], "s3cret");
    // No temp files left beside it.
    assert_eq!(std::fs::read_dir(&home).unwrap().count(), 1);

    login(&home, "docker.io", "alice2", "other").unwrap();
    let listed = list(&home, None).unwrap();
    assert_eq!(
        listed,
        vec![
            StoredLogin {
                registry: "127.0.0.1:5000".into(),
                username: "bob".into(),
                source: CredentialSource::Msb
            },
            StoredLogin {
                registry: "docker.io".into(),
                username: "alice2".into(),
                source: CredentialSource::Msb
            },
        ]
    );
    assert!(logout(&home, "registry-1.docker.io").unwrap());
    assert!(!logout(&home, "docker.io").unwrap());
    assert_eq!(list(&home, None).unwrap().len(), 1);
    assert!(login(&home, "ghcr.io", "", "x").is_err());
    assert!(login(&home, "ghcr.io", "u", "").is_err());
}

#[test]
fn entry_debug_output_hides_the_password() {
    let e = Entry {
        username: "u".into(),
        password: "hunter2".into(),
    };
    assert!(!format!("{e:?}").contains("hunter2"));
}

fn sources<'a>(home: &'a std::path::Path, docker: Option<&'a std::path::Path>) -> AuthSources<'a> {
    AuthSources {
        home: Some(home),
        docker_config: docker,
        ..Default::default()
    }
}

#[test]
fn explicit_then_configured_credentials_come_first() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    login(&home, "ghcr.io", "file", "filepw").unwrap();
    let mut s = sources(&home, None);
    assert_eq!(
        basic(resolve(&s, "ghcr.io").unwrap()),
        Some(("file".into(), "filepw".into()))
    );
    s.configured = Some(("conf".into(), "confpw".into()));
    assert_eq!(
        basic(resolve(&s, "ghcr.io").unwrap()),
        Some(("conf".into(), "confpw".into()))
    );
    s.explicit = Some(("mine".into(), "minepw".into()));
    assert_eq!(
        basic(resolve(&s, "ghcr.io").unwrap()),
        Some(("mine".into(), "minepw".into()))
    );
}

#[test]
fn resolve_prefers_msb_then_docker_then_anonymous() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let docker = write_docker(
        tmp.path(),
        r#"{
          "auths": {
            "https://index.docker.io/v1/": {"auth": "aHViOmh1YnB3"},
            "https://ghcr.io": {"username": "gh", "password": "ghpw"},
            "quay.io": {"auth": "cXVheTpwdzpjb2xvbg=="},
            "helper.example": {}
          },
          "credHelpers": {"gcr.io": "msb-test-absent"},
          "credsStore": "msb-test-absent-store",
          "psFormat": "table"
        }"#,
    );
    let d = Some(docker.as_path());
    assert!(matches!(
        resolve(&sources(&home, d), "example.com").unwrap(),
        RegistryAuth::Anonymous
    ));
    assert!(matches!(
        resolve(&sources(&home, d), "gcr.io").unwrap(),
        RegistryAuth::Anonymous
    ));
    assert!(matches!(
        resolve(&sources(&home, d), "helper.example").unwrap(),
        RegistryAuth::Anonymous
    ));
    for hub in ["docker.io", "registry-1.docker.io", "index.docker.io"] {
        assert_eq!(
            basic(resolve(&sources(&home, d), hub).unwrap()),
            Some(("hub".into(), "hubpw".into()))
        );
    }
    assert_eq!(
        basic(resolve(&sources(&home, d), "ghcr.io").unwrap()),
        Some(("gh".into(), "ghpw".into()))
    );
    // The password may itself contain ':'.
    assert_eq!(
        basic(resolve(&sources(&home, d), "quay.io").unwrap()),
        Some(("quay".into(), "pw:colon".into()))
    );
    login(&home, "docker.io", "mine", "minepw").unwrap();
    assert_eq!(
        basic(resolve(&sources(&home, d), "registry-1.docker.io").unwrap()),
        Some(("mine".into(), "minepw".into()))
    );
    let listed = list(&home, d).unwrap();
    let listed: Vec<(&str, &str, CredentialSource)> = listed
        .iter()
        .map(|l| (l.registry.as_str(), l.username.as_str(), l.source))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("docker.io", "mine", CredentialSource::Msb),
            ("ghcr.io", "gh", CredentialSource::DockerConfig),
            ("quay.io", "quay", CredentialSource::DockerConfig),
        ]
    );
    // A missing Docker config is simply not used.
    let missing = tmp.path().join("nope/config.json");
    assert!(matches!(
        resolve(&sources(&home, Some(&missing)), "ghcr.io").unwrap(),
        RegistryAuth::Anonymous
    ));
}

#[test]
fn malformed_files_are_errors_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(credentials_path(&home), "{not json").unwrap();
    for err in [
        resolve(&sources(&home, None), "ghcr.io").unwrap_err(),
        login(&home, "ghcr.io", "u", "p").unwrap_err(),
        list(&home, None).unwrap_err(),
    ] {
        assert!(matches!(err, AuthError::Malformed { .. }), "{err}");
        assert!(err.to_string().contains("credentials.json"), "{err}");
    }
    // The broken file was left as it was.
    assert_eq!(std::fs::read_to_string(credentials_path(&home)).unwrap(), "{not json");

    let home = tmp.path().join("home2");
    for (json, needle) in [
        ("[1, 2", "config.json"),
        (r#"{"auths": {"x.io": {"auth": "***"}}}"#, "not base64"),
        (r#"{"auths": {"x.io": {"auth": "bm9jb2xvbg=="}}}"#, "user:password"),
        (r#"{"auths": "nope"}"#, "config.json"),
    ] {
        let docker = write_docker(tmp.path(), json);
        let err = resolve(&sources(&home, Some(&docker)), "x.io").unwrap_err();
        assert!(matches!(err, AuthError::Malformed { .. }), "{json}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(needle) && msg.contains("config.json"), "{json}: {msg}");
    }
}

/// A one-shot fake registry: answers each connection with the next canned response and
/// records the requests it saw.
async fn fake_registry(responses: Vec<&'static str>) -> (String, tokio::task::JoinHandle<Vec<String>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let mut seen = Vec::new();
        for response in responses {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = sock.read(&mut buf).await.unwrap();
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            sock.write_all(response.as_bytes()).await.unwrap();
            sock.shutdown().await.unwrap();
        }
        seen
    });
    (addr, task)
}

const BASIC_401: &str = "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"msb\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const OK_200: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";

#[tokio::test]
async fn verify_answers_a_basic_challenge() {
    let (addr, task) = fake_registry(vec![BASIC_401, OK_200]).await;
    assert_eq!(verify_login(&addr, "u", "p", true).await.unwrap(), LoginCheck::Accepted);
    let seen = task.await.unwrap();
    // base64("u:p") = "dTpw"
    assert!(
        seen[1].to_ascii_lowercase().contains("authorization: basic dtpw"),
        "{seen:?}"
    );

    let (addr, _task) = fake_registry(vec![BASIC_401, BASIC_401]).await;
    let err = verify_login(&addr, "u", "bad", true).await.unwrap_err();
    assert!(matches!(err, AuthError::Rejected { .. }), "{err}");
    assert!(err.to_string().contains("nothing was saved"));

    let (addr, _task) = fake_registry(vec![OK_200]).await;
    assert_eq!(
        verify_login(&addr, "u", "p", true).await.unwrap(),
        LoginCheck::NotRequired
    );
}

#[tokio::test]
async fn verify_asks_the_bearer_realm_for_a_token() {
    let (token_addr, token_task) = fake_registry(vec![OK_200]).await;
    let challenge: &'static str = Box::leak(
        format!(
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://{token_addr}/token\",service=\"reg\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .into_boxed_str(),
    );
    let (addr, _task) = fake_registry(vec![challenge]).await;
    assert_eq!(verify_login(&addr, "u", "p", true).await.unwrap(), LoginCheck::Accepted);
    let seen = token_task.await.unwrap();
    assert!(seen[0].starts_with("GET /token?account=u&service=reg "), "{seen:?}");
}

#[tokio::test]
async fn verify_reports_an_unreachable_registry() {
    let err = verify_login("127.0.0.1:1", "u", "p", true).await.unwrap_err();
    assert!(matches!(err, AuthError::Failed { .. }), "{err}");
    assert!(err.to_string().contains("cannot reach http://127.0.0.1:1/v2/"), "{err}");
}
