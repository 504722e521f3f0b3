//! Forge webhooks, checked the way each forge signs them: GitHub's `X-Hub-Signature-256`
//! (`sha256=` and the HMAC-SHA256 of the body, hex), GitLab's `X-Gitlab-Token` (the secret
//! itself), Gitea's and Forgejo's `X-Gitea-Signature` / `X-Forgejo-Signature` (the
//! HMAC-SHA256 of the body, hex). Every comparison takes the same time whatever matches.
//! Pure: headers, body and secret in, a verdict out.

use sha2::{Digest, Sha256};

/// Who sent a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    /// `X-Hub-Signature-256`.
    GitHub,
    /// `X-Gitlab-Token`.
    GitLab,
    /// `X-Gitea-Signature` or `X-Forgejo-Signature`.
    Gitea,
}

impl Forge {
    /// The forge's name.
    pub fn name(self) -> &'static str {
        match self {
            Forge::GitHub => "GitHub",
            Forge::GitLab => "GitLab",
            Forge::Gitea => "Gitea/Forgejo",
        }
    }
}

/// The headers that carry a forge's credentials.
pub const CREDENTIAL_HEADERS: &[&str] = &[
    "x-hub-signature-256",
    "x-gitlab-token",
    "x-gitea-signature",
    "x-forgejo-signature",
];

/// Whether a request carries a forge's credentials (any of [`CREDENTIAL_HEADERS`]).
pub fn has_credentials(header: &dyn Fn(&str) -> Option<String>) -> bool {
    CREDENTIAL_HEADERS.iter().any(|h| header(h).is_some())
}

/// Checks a delivery's credentials against `secret`: `Ok(forge)` when they are valid,
/// else why not (without saying anything about the secret).
pub fn verify(
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
    secret: &[u8],
) -> Result<Forge, String> {
    if secret.is_empty() {
        return Err("the pipeline has no webhook secret".into());
    }
    if let Some(given) = header("x-hub-signature-256") {
        let hex = given
            .trim()
            .strip_prefix("sha256=")
            .ok_or("X-Hub-Signature-256 is not sha256=HEX")?;
        return check_hmac(hex, body, secret)
            .then_some(Forge::GitHub)
            .ok_or_else(|| "X-Hub-Signature-256 does not match the body".into());
    }
    if let Some(given) = header("x-gitlab-token") {
        return constant_time_eq(given.trim().as_bytes(), secret)
            .then_some(Forge::GitLab)
            .ok_or_else(|| "X-Gitlab-Token is wrong".into());
    }
    for name in ["x-gitea-signature", "x-forgejo-signature"] {
        if let Some(given) = header(name) {
            return check_hmac(given.trim(), body, secret)
                .then_some(Forge::Gitea)
                .ok_or_else(|| format!("{name} does not match the body"));
        }
    }
    Err("no X-Hub-Signature-256, X-Gitlab-Token or X-Gitea-Signature".into())
}

/// What a delivery asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A push of `branch` (`None` for tags) to commit `sha` (`None`: the branch was deleted).
    Push {
        /// The branch (`refs/heads/` removed).
        branch: Option<String>,
        /// The pushed commit.
        sha: Option<String>,
    },
    /// Anything else (GitHub's `ping`, issues, …), named.
    Other(String),
}

/// The event of a delivery from its headers and JSON body.
pub fn event(header: &dyn Fn(&str) -> Option<String>, body: &[u8]) -> Event {
    let kind = header("x-github-event")
        .or_else(|| header("x-gitea-event"))
        .or_else(|| header("x-forgejo-event"))
        .or_else(|| header("x-gitlab-event"))
        .unwrap_or_else(|| "push".into());
    if !matches!(kind.to_ascii_lowercase().as_str(), "push" | "push hook") {
        return Event::Other(kind);
    }
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let branch = v["ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("refs/heads/"))
        .map(str::to_string);
    let sha = v["checkout_sha"]
        .as_str()
        .or_else(|| v["after"].as_str())
        .filter(|s| !s.is_empty() && !s.bytes().all(|b| b == b'0'))
        .map(str::to_string);
    Event::Push { branch, sha }
}

fn check_hmac(hex: &str, body: &[u8], secret: &[u8]) -> bool {
    let expected = to_hex(&hmac_sha256(secret, body));
    constant_time_eq(hex.to_ascii_lowercase().as_bytes(), expected.as_bytes())
}

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| -> [u8; BLOCK] {
        let mut p = [0u8; BLOCK];
        for (o, k) in p.iter_mut().zip(k) {
            *o = k ^ byte;
        }
        p
    };
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equality whose time depends on the lengths only, not on where the bytes differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name: &str| {
            list.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn hmac_matches_known_answers() {
        // RFC 4231 test case 2, and GitHub's documented example.
        assert_eq!(
            to_hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            to_hex(&hmac_sha256(
                b"It's a Secret to Everybody",
                b"Hello, World!"
            )),
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        // A key longer than a block is hashed first (RFC 4231 test case 6).
        assert_eq!(
            to_hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn each_forge_is_checked_its_own_way() {
        let secret = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        let github = headers(&[(
            "X-Hub-Signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        )]);
        assert_eq!(verify(&github, body, secret), Ok(Forge::GitHub));
        assert!(verify(&github, b"Hello, World?", secret).is_err());
        assert!(verify(&github, body, b"another secret").is_err());
        let gitea = headers(&[(
            "X-Gitea-Signature",
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        )]);
        assert_eq!(verify(&gitea, body, secret), Ok(Forge::Gitea));
        let forgejo = headers(&[(
            "X-Forgejo-Signature",
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        )]);
        assert_eq!(verify(&forgejo, body, secret), Ok(Forge::Gitea));
        let gitlab = headers(&[("X-Gitlab-Token", "It's a Secret to Everybody")]);
        assert_eq!(verify(&gitlab, body, secret), Ok(Forge::GitLab));
        let wrong = headers(&[("X-Gitlab-Token", "It's a Secret to Everybodz")]);
        assert!(verify(&wrong, body, secret).is_err());
        assert!(verify(&headers(&[]), body, secret).is_err());
        assert!(verify(&gitlab, body, b"").is_err(), "no secret, no entry");
        assert!(!has_credentials(&headers(&[("Authorization", "Bearer x")])));
    }

    #[test]
    fn push_events_name_their_branch_and_commit() {
        let gitea = br#"{"ref": "refs/heads/develop", "before": "28e1879d029cb852e4844d9c718537df08844e03", "after": "bffeb74224043ba2feb48d137756c8a9331c449a"}"#;
        assert_eq!(
            event(&headers(&[("X-Gitea-Event", "push")]), gitea),
            Event::Push {
                branch: Some("develop".into()),
                sha: Some("bffeb74224043ba2feb48d137756c8a9331c449a".into())
            }
        );
        let gitlab = br#"{"object_kind": "push", "ref": "refs/heads/master", "after": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", "checkout_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"}"#;
        assert_eq!(
            event(&headers(&[("X-Gitlab-Event", "Push Hook")]), gitlab),
            Event::Push {
                branch: Some("master".into()),
                sha: Some("da1560886d4f094c3e6c9ef40349f7d38b5d27d7".into())
            }
        );
        let deleted =
            br#"{"ref": "refs/heads/old", "after": "0000000000000000000000000000000000000000"}"#;
        assert_eq!(
            event(&headers(&[("X-GitHub-Event", "push")]), deleted),
            Event::Push {
                branch: Some("old".into()),
                sha: None
            }
        );
        assert_eq!(
            event(&headers(&[("X-GitHub-Event", "ping")]), b"{}"),
            Event::Other("ping".into())
        );
    }
}
