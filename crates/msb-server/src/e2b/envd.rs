//! Who an envd request is for and from: the sandbox (`E2b-Sandbox-Id`, since every sandbox
//! shares one listener), the caller's right to it (`X-Access-Token`), the user it acts as
//! (HTTP Basic, user name only), and how it resolves relative paths.

use super::connect::{Code, ConnectError};
use super::state::E2bState;
use axum::http::{header, HeaderMap};
use base64::Engine;
use microsandbox::Sandbox;

/// The header naming the sandbox.
pub const SANDBOX_HEADER: &str = "e2b-sandbox-id";
/// The header carrying the sandbox's access token.
pub const ACCESS_TOKEN_HEADER: &str = "x-access-token";

/// An authenticated envd request's target.
#[derive(Debug)]
pub struct Envd {
    /// The sandbox id.
    pub id: String,
    /// A connection to it.
    pub sandbox: Sandbox,
    /// The user named by the request (`None`: the image's user).
    pub user: Option<String>,
}

impl Envd {
    /// Checks `headers` and connects to the sandbox they name.
    pub async fn of(state: &E2bState, headers: &HeaderMap) -> Result<Envd, ConnectError> {
        let id = headers
            .get(SANDBOX_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ConnectError::new(Code::InvalidArgument, "missing the E2b-Sandbox-Id header"))?
            .to_string();
        check_access(state, &id, headers)?;
        let user = user_of(headers)?;
        let sandbox = state.sandbox(&id).await?;
        Ok(Envd { id, sandbox, user })
    }

    /// `path` made absolute: relative paths start at the user's home, as in E2B.
    pub fn path(&self, path: &str) -> Result<String, ConnectError> {
        if path.is_empty() {
            return Err(ConnectError::new(Code::InvalidArgument, "the path is empty"));
        }
        if path.contains('\0') {
            return Err(ConnectError::new(Code::InvalidArgument, "the path contains a NUL byte"));
        }
        if path.starts_with('/') {
            return Ok(path.to_string());
        }
        let home = match self.user.as_deref() {
            None | Some("root") => "/root".to_string(),
            Some(user) => format!("/home/{user}"),
        };
        let rest = path.strip_prefix("~/").unwrap_or(if path == "~" { "" } else { path });
        Ok(format!("{home}/{rest}").trim_end_matches('/').to_string())
    }
}

fn check_access(state: &E2bState, id: &str, headers: &HeaderMap) -> Result<(), ConnectError> {
    let Some(expected) = state.access_token(id) else {
        return Ok(());
    };
    let given = headers
        .get(ACCESS_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if crate::token::matches(&expected, given) {
        Ok(())
    } else {
        Err(ConnectError::new(
            Code::Unauthenticated,
            "invalid or missing X-Access-Token for this sandbox",
        ))
    }
}

/// The user of `Authorization: Basic base64(user:)`; none when the header is absent.
fn user_of(headers: &HeaderMap) -> Result<Option<String>, ConnectError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || {
        ConnectError::new(
            Code::InvalidArgument,
            "the Authorization header is not Basic base64(user:)",
        )
    };
    let encoded = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Basic "))
        .ok_or_else(bad)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let user = text.split(':').next().unwrap_or_default();
    if user.is_empty() || !user.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        return Err(bad());
    }
    Ok(Some(user.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_user_comes_from_basic_auth_and_odd_names_are_refused() {
        let mut headers = HeaderMap::new();
        assert_eq!(user_of(&headers).unwrap(), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic dXNlcjo=")); // user:
        assert_eq!(user_of(&headers).unwrap().as_deref(), Some("user"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic Li4vZXRjOg==")); // ../etc:
        assert!(user_of(&headers).is_err());
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert!(user_of(&headers).is_err());
    }
}
