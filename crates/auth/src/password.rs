//! Password hashing (Argon2id, PHC strings) and opaque API tokens.

use std::sync::OnceLock;

use argon2::{Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::{AuthError, os_random_or_panic};

/// Longest password [`hash_password`] accepts, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Prefix of every token from [`new_token`], so leaked tokens are recognisable by scanners.
pub const TOKEN_PREFIX: &str = "slw_";

/// Upper bounds on the cost parameters [`verify_password`] accepts from a stored hash, so a
/// corrupted or hostile database row cannot make a login allocate gigabytes or spin for minutes.
const MAX_M_COST_KIB: u32 = 256 * 1024;
const MAX_T_COST: u32 = 16;
const MAX_P_COST: u32 = 16;

/// Hashes a password with Argon2id (the argon2 crate's default parameters, currently
/// m=19 MiB, t=2, p=1) and a random 16-byte salt from the OS, returning the PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$…`) to store.
///
/// Rejects empty passwords and passwords longer than [`MAX_PASSWORD_BYTES`].
pub fn hash_password(pw: &str) -> Result<String, AuthError> {
    if pw.is_empty() {
        return Err(AuthError::EmptyPassword);
    }
    if pw.len() > MAX_PASSWORD_BYTES {
        return Err(AuthError::PasswordTooLong);
    }
    Argon2::default()
        .hash_password(pw.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Checks a password against a stored PHC string. The comparison is constant-time (done by
/// the argon2 crate). Returns false for a wrong password, an over-long password, a malformed
/// hash, or a hash whose cost parameters are implausibly high.
///
/// Parameters come from the stored hash, so hashes created with older defaults keep working.
pub fn verify_password(pw: &str, phc: &str) -> bool {
    if pw.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    if params.m_cost() > MAX_M_COST_KIB
        || params.t_cost() > MAX_T_COST
        || params.p_cost() > MAX_P_COST
    {
        return false;
    }
    Argon2::default()
        .verify_password(pw.as_bytes(), &hash)
        .is_ok()
}

/// Login check that takes about as long whether or not the user exists: with `None` (unknown
/// user, or a user without a password) it verifies against a dummy hash and returns false,
/// so response times do not reveal which user names exist.
pub fn verify_login(pw: &str, phc: Option<&str>) -> bool {
    match phc {
        Some(phc) => verify_password(pw, phc),
        None => {
            static DUMMY: OnceLock<Option<String>> = OnceLock::new();
            if let Some(dummy) = DUMMY.get_or_init(|| hash_password("slipway-dummy").ok()) {
                let _ = verify_password(pw, dummy);
            }
            false
        }
    }
}

/// A new opaque API token: `slw_` followed by 32 random bytes in unpadded base64url
/// (47 characters in total). Show it to the user once and store only [`token_hash`].
///
/// # Panics
/// When the operating system's random number generator fails (see the crate docs).
pub fn new_token() -> String {
    let bytes: [u8; 32] = os_random_or_panic();
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The lookup key of a token: lowercase hex SHA-256 of its UTF-8 bytes (64 characters).
///
/// Tokens carry 256 bits of entropy, so an unsalted fast hash is sufficient; database
/// readers cannot recover tokens from it.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in digest.iter() {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A random password for the bootstrap admin: 18 random bytes as unpadded base64url,
/// 24 URL-safe characters (144 bits).
///
/// # Panics
/// When the operating system's random number generator fails (see the crate docs).
pub fn random_password() -> String {
    let bytes: [u8; 18] = os_random_or_panic();
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn hash_and_verify_round_trip() {
        let phc = hash_password("correct horse: battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password("correct horse: battery", &phc));
        assert!(!verify_password("correct horse: batterY", &phc));
        assert!(!verify_password("", &phc));
        // Same password, different salt.
        let again = hash_password("correct horse: battery").unwrap();
        assert_ne!(phc, again);
        assert!(verify_login("correct horse: battery", Some(&again)));
        assert!(!verify_login("correct horse: battery", None));
    }

    #[test]
    fn rejects_bad_passwords_and_hashes() {
        assert!(matches!(hash_password(""), Err(AuthError::EmptyPassword)));
        let long = "x".repeat(MAX_PASSWORD_BYTES + 1);
        assert!(matches!(
            hash_password(&long),
            Err(AuthError::PasswordTooLong)
        ));
        for bad in [
            "",
            "plain",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$zz$zz",
        ] {
            assert!(!verify_password("pw", bad), "{bad}");
        }
        // Absurd cost parameters are refused without hashing.
        let huge = "$argon2id$v=19$m=4000000,t=2,p=1$c2FsdHNhbHRzYWx0$\
                    AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(!verify_password("pw", huge));
    }

    #[test]
    fn tokens_are_unique_and_well_formed() {
        let tokens: HashSet<String> = (0..200).map(|_| new_token()).collect();
        assert_eq!(tokens.len(), 200);
        for t in &tokens {
            assert_eq!(t.len(), 47, "{t}");
            assert!(t.starts_with(TOKEN_PREFIX));
            assert!(
                t[4..]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
        }
        let pw = random_password();
        assert_eq!(pw.len(), 24);
        assert_ne!(pw, random_password());
    }

    #[test]
    fn token_hash_is_hex_sha256() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            token_hash(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let t = new_token();
        assert_eq!(token_hash(&t), token_hash(&t.clone()));
        assert_ne!(token_hash(&t), token_hash(&new_token()));
    }
}
