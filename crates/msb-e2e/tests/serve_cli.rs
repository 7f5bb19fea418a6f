//! `msb serve`'s own rules, without VMs: where it refuses to listen, the token's life
//! (printed once, 0600, rotated), and HTTPS with a given certificate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use msb_e2e::serve::Server;
use msb_e2e::Sandbox;
use std::os::unix::fs::PermissionsExt;

#[test]
fn it_refuses_to_listen_beyond_loopback_without_a_token_or_tls() {
    let w = Sandbox::new();
    let no_auth = w.output(&["serve", "--listen", "0.0.0.0:0", "--no-auth"]);
    assert_eq!(no_auth.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&no_auth.stderr).contains("--no-auth is for loopback"));
    let plain = w.output(&["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(plain.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&plain.stderr).contains("--tls-cert"));
    let missing = w.output(&[
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--tls-cert",
        "/nonexistent.pem",
        "--tls-key",
        "/nonexistent.key",
    ]);
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("/nonexistent.pem"),
        "{missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_private_printed_once_and_rotatable() {
    let server = Server::start();
    let path = server.world.home().join("server/token");
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let client = server.client();
    assert_eq!(client.get("/v1/sandboxes").await.0, 200);
    let world = Sandbox::new();
    let home = server.world.home().to_path_buf();
    let old = server.token.clone();

    // A second server on the same home keeps the token and does not print it again.
    let mut again = world.msb();
    again.env("MSB_HOME", &home).args(["serve", "--listen", "127.0.0.1:0"]);
    let mut child = again
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains(&old),
        "the token was printed again"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), old);

    // Rotation: a new token, printed; the old one is refused.
    let mut rotate = world.msb();
    rotate
        .env("MSB_HOME", &home)
        .args(["serve", "--listen", "127.0.0.1:0", "--rotate-token"]);
    let rotated = msb_e2e::serve::Server::start_with(rotate, world);
    assert_ne!(rotated.token, old);
    let mut stale = rotated.client();
    stale.token = old;
    let (status, body) = stale.get("/v1/sandboxes").await;
    assert_eq!((status, body["error"]["kind"].as_str()), (401, Some("unauthorized")));
    assert_eq!(rotated.client().get("/v1/sandboxes").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_speaks_https_with_the_certificate_it_is_given() {
    let world = Sandbox::new();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_path, key_path) = (world.home().join("cert.pem"), world.home().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let server = Server::start_in(
        world,
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let port = server.url.rsplit(':').next().unwrap();
    let trusted = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.pem().as_bytes()).unwrap())
        .resolve("localhost", format!("127.0.0.1:{port}").parse().unwrap())
        .build()
        .unwrap();
    let r = trusted
        .get(format!("https://localhost:{port}/v1/sandboxes"))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN offers h2");
}
