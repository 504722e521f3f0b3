//! Credentials for a remote Marathon API, read from a secret's value. They never appear in
//! `Debug` output or error messages.

use std::fmt;

/// How a client authenticates to a remote Marathon API.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// HTTP basic, as Marathon's `--http_credentials` and Slipway's users take it.
    Basic {
        /// The user name (shown in errors; not a secret).
        user: String,
        /// The password.
        password: String,
    },
    /// `Authorization: Bearer TOKEN` (Slipway's API tokens).
    Bearer(String),
    /// `Authorization: token=TOKEN`, as DC/OS in front of Marathon takes it.
    DcosToken(String),
}

impl Credentials {
    /// Reads a secret's value:
    ///
    /// - `Bearer TOKEN` → a bearer token (a token that contains `:` needs this form);
    /// - `token=TOKEN` → DC/OS's `Authorization: token=TOKEN`;
    /// - `user:password` → HTTP basic;
    /// - anything else → a bearer token.
    ///
    /// Surrounding whitespace (a trailing newline from `echo`) is ignored.
    pub fn from_secret(value: &str) -> Credentials {
        let value = value.trim();
        if let Some(token) = value.strip_prefix("Bearer ") {
            return Credentials::Bearer(token.trim().to_string());
        }
        if let Some(token) = value.strip_prefix("token=") {
            return Credentials::DcosToken(token.to_string());
        }
        match value.split_once(':') {
            Some((user, password)) => Credentials::Basic {
                user: user.to_string(),
                password: password.to_string(),
            },
            None => Credentials::Bearer(value.to_string()),
        }
    }

    /// What was sent, for error messages: `HTTP basic as user ops`, `a bearer token`.
    pub fn describe(&self) -> String {
        match self {
            Credentials::Basic { user, .. } => format!("HTTP basic as user {user}"),
            Credentials::Bearer(_) => "a bearer token".into(),
            Credentials::DcosToken(_) => "a DC/OS token".into(),
        }
    }

    /// The secret parts, to scrub from anything shown.
    pub(crate) fn secret_parts(&self) -> [&str; 1] {
        match self {
            Credentials::Basic { password, .. } => [password.as_str()],
            Credentials::Bearer(t) | Credentials::DcosToken(t) => [t.as_str()],
        }
    }

    /// Adds the `Authorization` header to a request.
    pub(crate) fn apply(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Credentials::Basic { user, password } => rb.basic_auth(user, Some(password)),
            Credentials::Bearer(t) => rb.bearer_auth(t),
            Credentials::DcosToken(t) => {
                rb.header(reqwest::header::AUTHORIZATION, format!("token={t}"))
            }
        }
    }
}

/// Shows the kind and the user, never the password or token.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({})", self.describe())
    }
}

/// `text` with every secret part of `credentials` replaced by `***` (parts shorter than
/// four characters are left alone: they would blank out ordinary words).
pub(crate) fn scrub(text: &str, credentials: Option<&Credentials>) -> String {
    let mut out = text.to_string();
    for part in credentials.into_iter().flat_map(Credentials::secret_parts) {
        if part.len() >= 4 {
            out = out.replace(part, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values() {
        let basic = Credentials::from_secret("ops:pa:ss\n");
        assert_eq!(
            basic,
            Credentials::Basic {
                user: "ops".into(),
                password: "pa:ss".into()
            }
        );
        assert_eq!(
            Credentials::from_secret("slw_abc"),
            Credentials::Bearer("slw_abc".into())
        );
        assert_eq!(
            Credentials::from_secret("Bearer a:b"),
            Credentials::Bearer("a:b".into())
        );
        assert_eq!(
            Credentials::from_secret("token=eyJ"),
            Credentials::DcosToken("eyJ".into())
        );
    }

    #[test]
    fn nothing_secret_is_shown() {
        let basic = Credentials::from_secret("ops:hunter22");
        assert_eq!(format!("{basic:?}"), "Credentials(HTTP basic as user ops)");
        assert!(!format!("{:?}", Credentials::from_secret("slw_tok")).contains("slw_tok"));
        assert_eq!(
            scrub("bad password hunter22 for ops", Some(&basic)),
            "bad password *** for ops"
        );
        assert_eq!(scrub("x", None), "x");
    }
}
