//! Console sessions: a random id in an HttpOnly, SameSite=Strict cookie names a session
//! held in memory, which carries the user's API token (created at sign-in, revoked at
//! sign-out) and the CSRF token every form must send back.

use auth::Role;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Name of the session cookie.
pub(crate) const COOKIE: &str = "slipway_session";
/// Name of the cookie that carries the sign-in form's CSRF token before a session exists.
pub(crate) const LOGIN_COOKIE: &str = "slipway_login";
/// How long a session lasts (its API token expires at the same time).
pub(crate) const LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// One signed-in browser.
#[derive(Clone, Debug)]
pub struct Session {
    /// The user.
    pub user: String,
    /// Their role when they signed in.
    pub role: Role,
    /// The bearer token the console sends to the API on the user's behalf (`None` with
    /// `--auth none`).
    pub token: Option<String>,
    /// The token's id, to revoke it at sign-out.
    pub token_id: Option<String>,
    /// The CSRF token of this session's forms.
    pub csrf: String,
    expires: Instant,
}

/// Sessions by id.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session; returns its id (the cookie value).
    pub fn create(
        &self,
        user: &str,
        role: Role,
        token: Option<String>,
        token_id: Option<String>,
    ) -> String {
        let id = auth::new_token();
        let session = Session {
            user: user.to_string(),
            role,
            token,
            token_id,
            csrf: auth::new_token(),
            expires: Instant::now() + LIFETIME,
        };
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        map.insert(id.clone(), session);
        id
    }

    /// The live session with this id.
    pub fn get(&self, id: &str) -> Option<Session> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id).filter(|s| s.expires > Instant::now()).cloned()
    }

    /// Ends a session; returns it.
    pub fn remove(&self, id: &str) -> Option<Session> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
    }
}

/// Whether a form's CSRF token is the session's (compared in constant time).
pub(crate) fn csrf_ok(expected: &str, given: Option<&str>) -> bool {
    let Some(given) = given else { return false };
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    if a.len() != b.len() || a.is_empty() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in a `Cookie` header.
pub(crate) fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, path `/`, `Secure` when served over TLS;
/// an empty value with `Max-Age=0` deletes it.
pub(crate) fn set_cookie(name: &str, value: &str, secure: bool) -> String {
    let age = if value.is_empty() {
        0
    } else {
        LIFETIME.as_secs()
    };
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_found_by_id_and_ended() {
        let s = Sessions::default();
        let id = s.create(
            "dana",
            Role::Deployer,
            Some("slw_x".into()),
            Some("t1".into()),
        );
        let got = s.get(&id).expect("session");
        assert_eq!((got.user.as_str(), got.role), ("dana", Role::Deployer));
        assert!(got.csrf.len() > 20);
        assert!(s.get("slw_other").is_none());
        let other = s.create("dana", Role::Deployer, None, None);
        assert_ne!(
            s.get(&other).unwrap().csrf,
            got.csrf,
            "one CSRF token per session"
        );
        assert_eq!(s.remove(&id).unwrap().token_id.as_deref(), Some("t1"));
        assert!(s.get(&id).is_none());
    }

    #[test]
    fn csrf_needs_the_exact_token() {
        assert!(csrf_ok("abc", Some("abc")));
        for bad in [None, Some(""), Some("abd"), Some("ab"), Some("abcd")] {
            assert!(!csrf_ok("abc", bad), "{bad:?}");
        }
        assert!(!csrf_ok("", Some("")), "an empty token never matches");
    }

    #[test]
    fn cookies_parse_and_are_strict() {
        let h = "a=1; slipway_session=slw_abc; b=2";
        assert_eq!(cookie(h, COOKIE), Some("slw_abc"));
        assert_eq!(cookie(h, "c"), None);
        let set = set_cookie(COOKIE, "v", false);
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        assert!(!set.contains("Secure"));
        assert!(set_cookie(COOKIE, "v", true).ends_with("; Secure"));
        assert!(set_cookie(COOKIE, "", false).contains("Max-Age=0"));
    }
}
