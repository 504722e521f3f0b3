//! Parsing of HTTP `Authorization` headers: Basic, Bearer and the DC/OS `token=` form.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;

use crate::AuthError;

/// Credentials presented by a client. `Debug` redacts the password and token.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `Authorization: Basic base64(user:password)`; check with [`crate::verify_login`].
    Basic {
        /// The user name (never empty, never contains ':').
        user: String,
        /// The password (may contain ':'; may be empty, which never verifies).
        password: String,
    },
    /// `Authorization: Bearer <token>` or `Authorization: token=<token>` (DC/OS clients such
    /// as marathon-python and the Jenkins Marathon plugin); look up by [`crate::token_hash`].
    Bearer(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("password", &"***")
                .finish(),
            Credentials::Bearer(_) => f.debug_tuple("Bearer").field(&"***").finish(),
        }
    }
}

/// Parses an `Authorization` header value. Schemes are case-insensitive and surrounding
/// whitespace is ignored. Accepted forms:
///
/// * `Basic <base64 of user:password>` — split at the first ':', so passwords may contain ':'
///   (padding optional, standard alphabet, must be UTF-8, user must be non-empty);
/// * `Bearer <token>`;
/// * `token=<token>` (optionally quoted), as sent by DC/OS clients.
///
/// Anything else is an error, which the server answers with 401.
pub fn parse_authorization(header: &str) -> Result<Credentials, AuthError> {
    let header = header.trim();
    if let Some(prefix) = header.get(..6)
        && prefix.eq_ignore_ascii_case("token=")
    {
        let raw = header[6..].trim();
        let token = raw
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(raw);
        return bearer(token);
    }
    let (scheme, rest) = header.split_once(|c: char| c.is_ascii_whitespace()).ok_or(
        AuthError::MalformedAuthorization("expected <scheme> <credentials>"),
    )?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        basic(rest)
    } else if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token") {
        // `Token` is InfluxDB 2.x's scheme (Telegraf's and the client libraries').
        bearer(rest)
    } else {
        let mut shown: String = scheme.chars().take(32).collect();
        if shown.len() < scheme.len() {
            shown.push('…');
        }
        Err(AuthError::UnsupportedScheme(shown))
    }
}

/// Decodes the payload of a Basic header.
fn basic(encoded: &str) -> Result<Credentials, AuthError> {
    let bytes = STANDARD_PAD_INDIFFERENT
        .decode(encoded)
        .map_err(|_| AuthError::MalformedAuthorization("basic credentials are not base64"))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| AuthError::MalformedAuthorization("basic credentials are not utf-8"))?;
    let (user, password) = text
        .split_once(':')
        .ok_or(AuthError::MalformedAuthorization(
            "basic credentials lack ':'",
        ))?;
    if user.is_empty() {
        return Err(AuthError::MalformedAuthorization("empty user name"));
    }
    if user.chars().any(char::is_control) {
        return Err(AuthError::MalformedAuthorization(
            "control character in user name",
        ));
    }
    Ok(Credentials::Basic {
        user: user.to_string(),
        password: password.to_string(),
    })
}

/// Validates a bearer token: non-empty, printable ASCII without whitespace.
fn bearer(token: &str) -> Result<Credentials, AuthError> {
    if token.is_empty() {
        return Err(AuthError::MalformedAuthorization("empty token"));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AuthError::MalformedAuthorization(
            "invalid character in token",
        ));
    }
    Ok(Credentials::Bearer(token.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn basic_creds(user: &str, password: &str) -> Credentials {
        Credentials::Basic {
            user: user.into(),
            password: password.into(),
        }
    }

    #[test]
    fn accepts_valid_headers() {
        let cases: Vec<(String, Credentials)> = vec![
            (
                format!("Basic {}", b64("alice:s3cret")),
                basic_creds("alice", "s3cret"),
            ),
            (
                format!("basic {}", b64("alice:a:b:c")),
                basic_creds("alice", "a:b:c"),
            ),
            (format!("BASIC  {} ", b64("bob:")), basic_creds("bob", "")),
            (
                format!("Basic {}", b64("jörg:pässwörd")),
                basic_creds("jörg", "pässwörd"),
            ),
            // Unpadded base64 ("ab:c" encodes to "YWI6Yw==").
            ("Basic YWI6Yw".into(), basic_creds("ab", "c")),
            (
                "Bearer slw_abc-DEF_123".into(),
                Credentials::Bearer("slw_abc-DEF_123".into()),
            ),
            ("bearer   tok ".into(), Credentials::Bearer("tok".into())),
            (
                "token=eyJhbGciOi.x.y".into(),
                Credentials::Bearer("eyJhbGciOi.x.y".into()),
            ),
            ("TOKEN=abc".into(), Credentials::Bearer("abc".into())),
            ("token=\"abc\"".into(), Credentials::Bearer("abc".into())),
            ("  token= abc".into(), Credentials::Bearer("abc".into())),
        ];
        for (header, want) in cases {
            assert_eq!(parse_authorization(&header).unwrap(), want, "{header}");
        }
    }

    #[test]
    fn rejects_malformed_headers() {
        let cases = [
            "".to_string(),
            "Basic".into(),
            "Bearer".into(),
            "Bearer ".into(),
            "Bearer a b".into(),
            "token=".into(),
            "token=a b".into(),
            "Basic !!!notbase64!!!".into(),
            format!("Basic {}", b64("no-colon")),
            format!("Basic {}", b64(":password-only")),
            format!("Basic {}", b64("ctl\u{7}:x")),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode([0xff, b':'])
            ),
            "Digest username=\"x\"".into(),
            "Negotiate abc".into(),
            "garbage".into(),
            "ä€ garbage".into(),
        ];
        for header in cases {
            assert!(parse_authorization(&header).is_err(), "{header:?}");
        }
        let err = parse_authorization("Digest x").unwrap_err().to_string();
        assert_eq!(err, "unsupported authorization scheme \"Digest\"");
    }

    #[test]
    fn debug_redacts_secrets() {
        let shown = format!("{:?}", basic_creds("alice", "hunter2"));
        assert!(
            shown.contains("alice") && !shown.contains("hunter2"),
            "{shown}"
        );
        let shown = format!("{:?}", Credentials::Bearer("slw_topsecret".into()));
        assert!(!shown.contains("topsecret"), "{shown}");
    }
}
