//! Console sessions: a random id in an HttpOnly, SameSite=Strict cookie names a session,
//! which carries the user's API token (created at sign-in, revoked at sign-out) and the
//! CSRF token every form must send back. Sessions are kept in the store (keyed by the
//! id's hash, their tokens sealed with the server's key), so a restart of the server signs
//! nobody out; a memory cache in front saves the database read and the unsealing.

use auth::{Role, SecretKey};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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
    /// Where sessions outlive the process (`None`: memory only).
    at_rest: Option<(Arc<store::Store>, Arc<SecretKey>)>,
}

/// What a stored session seals.
#[derive(serde::Serialize, serde::Deserialize)]
struct Sealed {
    token: Option<String>,
    csrf: String,
}

fn now_ms() -> i64 {
    model::Timestamp::now().millis()
}

/// The name a session's secrets are sealed under (binds the ciphertext to its row).
fn seal_name(id_hash: &str) -> String {
    format!("console-session:{id_hash}")
}

impl Sessions {
    /// Sessions kept in `store` as well as in memory, their secrets sealed with `key`.
    pub fn at_rest(store: Arc<store::Store>, key: Arc<SecretKey>) -> Sessions {
        Sessions {
            map: Mutex::default(),
            at_rest: Some((store, key)),
        }
    }

    /// Writes a new session to the store (a failure is logged: the session still works
    /// until the server restarts).
    fn keep(&self, id: &str, s: &Session) {
        let Some((store, key)) = &self.at_rest else {
            return;
        };
        let id_hash = auth::token_hash(id);
        let secrets = Sealed {
            token: s.token.clone(),
            csrf: s.csrf.clone(),
        };
        let stored = serde_json::to_vec(&secrets)
            .map_err(|e| e.to_string())
            .and_then(|plain| {
                key.seal(&seal_name(&id_hash), &plain)
                    .map_err(|e| e.to_string())
            })
            .and_then(|sealed| {
                let left = s.expires.saturating_duration_since(Instant::now());
                let row = store::SessionRow {
                    id_hash: id_hash.clone(),
                    user: s.user.clone(),
                    role: s.role.as_str().to_string(),
                    token_id: s.token_id.clone(),
                    sealed,
                    expires_at: now_ms() + i64::try_from(left.as_millis()).unwrap_or(i64::MAX / 2),
                };
                store.put_session(&row, now_ms()).map_err(|e| e.to_string())
            });
        if let Err(e) = stored {
            tracing::warn!(user = %s.user, error = %e, "cannot store the console session; it ends with this process");
        }
    }

    /// The stored session with this id, if it is live and unseals.
    fn load(&self, id: &str) -> Option<Session> {
        let (store, key) = self.at_rest.as_ref()?;
        let id_hash = auth::token_hash(id);
        let row = store.session(&id_hash, now_ms()).ok()??;
        let plain = key.open(&seal_name(&id_hash), &row.sealed).ok()?;
        let secrets: Sealed = serde_json::from_slice(&plain).ok()?;
        let left = u64::try_from(row.expires_at - now_ms()).ok()?;
        Some(Session {
            user: row.user,
            role: row.role.parse().ok()?,
            token: secrets.token,
            token_id: row.token_id,
            csrf: secrets.csrf,
            expires: Instant::now() + Duration::from_millis(left),
        })
    }

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
        self.keep(&id, &session);
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        map.insert(id.clone(), session);
        id
    }

    /// The live session with this id (from memory, else from the store).
    pub fn get(&self, id: &str) -> Option<Session> {
        {
            let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(s) = map.get(id) {
                return (s.expires > Instant::now()).then(|| s.clone());
            }
        }
        let loaded = self.load(id)?;
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string(), loaded.clone());
        Some(loaded)
    }

    /// Ends a session, here and in the store; returns it.
    pub fn remove(&self, id: &str) -> Option<Session> {
        let cached = self
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        let session = cached.or_else(|| self.load(id));
        if let Some((store, _)) = &self.at_rest
            && let Err(e) = store.delete_session(&auth::token_hash(id))
        {
            tracing::warn!(error = %e, "cannot delete the console session from the store");
        }
        session
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
    fn sessions_outlive_the_process_sealed_and_end_everywhere() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(store::Store::open(&dir.path().join("db")).unwrap());
        let key = Arc::new(SecretKey::generate().unwrap());
        let first = Sessions::at_rest(store.clone(), key.clone());
        let id = first.create(
            "dana",
            Role::Deployer,
            Some("slw_secret_token".into()),
            Some("t1".into()),
        );
        let csrf = first.get(&id).unwrap().csrf;
        // Nothing readable at rest: not the cookie, not the API token, not the CSRF token.
        let raw = std::fs::read(dir.path().join("db")).unwrap();
        let wal = std::fs::read(dir.path().join("db-wal")).unwrap_or_default();
        for secret in [id.as_str(), "slw_secret_token", csrf.as_str()] {
            let needle = secret.as_bytes();
            for bytes in [&raw, &wal] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "{secret} stored in the clear"
                );
            }
        }
        // A new process (new memory) finds the session, tokens intact.
        let again = Sessions::at_rest(store.clone(), key.clone());
        let got = again.get(&id).expect("the session after a restart");
        assert_eq!(
            (
                got.user.as_str(),
                got.role,
                got.token.as_deref(),
                got.token_id.as_deref()
            ),
            ("dana", Role::Deployer, Some("slw_secret_token"), Some("t1"))
        );
        assert_eq!(got.csrf, csrf);
        assert!(again.get("slw_guess").is_none());
        // Another key cannot open it.
        let stranger = Sessions::at_rest(store.clone(), Arc::new(SecretKey::generate().unwrap()));
        assert!(stranger.get(&id).is_none());
        // Signing out ends it for every process.
        assert!(again.remove(&id).is_some());
        assert!(Sessions::at_rest(store, key).get(&id).is_none());
        assert!(
            first.get(&id).is_some(),
            "memory of another process is its own"
        );
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
