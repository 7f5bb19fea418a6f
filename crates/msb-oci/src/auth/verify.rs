//! Checking a username and password against a registry before they are saved, the way
//! `docker login` does: `GET /v2/`, then answer its challenge (HTTP Basic, or a bearer
//! token request to the realm it names) with the credentials.

use super::{normalize_host, AuthError};
use reqwest::header::WWW_AUTHENTICATE;
use reqwest::StatusCode;
use std::time::Duration;

/// What the registry said about the credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginCheck {
    /// The registry accepted them.
    Accepted,
    /// The registry asks for no credentials at all, so they could not be checked.
    NotRequired,
}

/// The host that serves the registry API of `host` (Docker Hub's differs from its name).
fn api_host(host: &str) -> &str {
    if host == "docker.io" {
        "registry-1.docker.io"
    } else {
        host
    }
}

/// Checks `username`/`password` against `host`'s registry, over plain HTTP when `insecure`.
pub async fn verify_login(host: &str, username: &str, password: &str, insecure: bool) -> Result<LoginCheck, AuthError> {
    let host = normalize_host(host)?;
    let failed = |reason: String| AuthError::Failed {
        host: host.clone(),
        reason,
    };
    let rejected = || AuthError::Rejected {
        host: host.clone(),
        username: username.to_string(),
    };
    let scheme = if insecure { "http" } else { "https" };
    let url = format!("{scheme}://{}/v2/", api_host(&host));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| failed(format!("cannot set up an HTTP client: {e}")))?;
    let unreachable = |e: reqwest::Error| failed(format!("cannot reach {url}: {}", innermost(&e)));
    let probe = client.get(&url).send().await.map_err(unreachable)?;
    if probe.status().is_success() {
        return Ok(LoginCheck::NotRequired);
    }
    if probe.status() != StatusCode::UNAUTHORIZED {
        return Err(failed(format!("GET {url} answered {}", probe.status())));
    }
    let challenge = probe
        .headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let (scheme_name, params) = parse_challenge(&challenge);
    let answer = if scheme_name.eq_ignore_ascii_case("basic") {
        client.get(&url).basic_auth(username, Some(password)).send().await
    } else if scheme_name.eq_ignore_ascii_case("bearer") {
        let realm =
            param(&params, "realm").ok_or_else(|| failed(format!("{url}: bearer challenge without a realm")))?;
        let mut query = vec![("account", username)];
        if let Some(service) = param(&params, "service") {
            query.push(("service", service));
        }
        client
            .get(realm)
            .query(&query)
            .basic_auth(username, Some(password))
            .send()
            .await
    } else {
        return Err(failed(format!(
            "{url} asks for unsupported authentication '{challenge}'"
        )));
    };
    let answer = answer.map_err(|e| failed(format!("during the credential check: {}", innermost(&e))))?;
    match answer.status() {
        s if s.is_success() => Ok(LoginCheck::Accepted),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(rejected()),
        s => Err(failed(format!("the credential check answered {s}"))),
    }
}

/// The deepest cause of an HTTP error ("Connection refused" rather than "error sending request").
fn innermost(e: &reqwest::Error) -> String {
    let mut reason = e.to_string();
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(c) = cause {
        reason = c.to_string();
        cause = c.source();
    }
    reason
}

/// Splits `Bearer realm="…",service="…"` into the scheme and its `key="value"` parameters.
fn parse_challenge(header: &str) -> (String, Vec<(String, String)>) {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = Vec::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((v, tail)) => (v, tail),
                None => (quoted, ""),
            }
        } else {
            after.split_once(',').unwrap_or((after, ""))
        };
        params.push((key, value.to_string()));
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    (scheme.to_string(), params)
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::{api_host, param, parse_challenge};

    #[test]
    fn parses_bearer_and_basic_challenges() {
        let (scheme, params) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="a:b:pull""#,
        );
        assert_eq!(scheme, "Bearer");
        assert_eq!(param(&params, "realm"), Some("https://auth.docker.io/token"));
        assert_eq!(param(&params, "service"), Some("registry.docker.io"));
        assert_eq!(param(&params, "scope"), Some("a:b:pull"));
        let (scheme, params) = parse_challenge(r#"Basic realm="msb""#);
        assert_eq!(scheme, "Basic");
        assert_eq!(param(&params, "realm"), Some("msb"));
        let (scheme, params) = parse_challenge("Basic realm=plain, charset=\"UTF-8\"");
        assert_eq!(scheme, "Basic");
        assert_eq!(param(&params, "realm"), Some("plain"));
        assert_eq!(param(&params, "charset"), Some("UTF-8"));
        assert_eq!(parse_challenge("").0, "");
    }

    #[test]
    fn docker_hub_api_lives_elsewhere() {
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
