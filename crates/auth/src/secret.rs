//! Secret encryption (ChaCha20-Poly1305 under a key file outside the database), redacted
//! strings and log masking.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_PAD_INDIFFERENT, URL_SAFE_NO_PAD_INDIFFERENT};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit, Nonce};

use crate::{AuthError, os_random};

/// Length of a [`SecretKey`] in bytes.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The 256-bit key that seals secrets. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; KEY_LEN]);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

impl SecretKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, AuthError> {
        os_random().map(SecretKey)
    }

    /// Decodes a key given as base64 (standard or URL-safe alphabet, padding optional), e.g.
    /// from an environment variable. It must decode to exactly 32 bytes.
    pub fn from_base64(encoded: &str) -> Result<Self, AuthError> {
        let encoded = encoded.trim();
        let bytes = STANDARD_PAD_INDIFFERENT
            .decode(encoded)
            .or_else(|_| URL_SAFE_NO_PAD_INDIFFERENT.decode(encoded))
            .map_err(|_| AuthError::InvalidKey("not valid base64"))?;
        <[u8; KEY_LEN]>::try_from(bytes.as_slice())
            .map(SecretKey)
            .map_err(|_| AuthError::InvalidKey("must decode to exactly 32 bytes"))
    }

    /// Loads the key from `path` (exactly 32 raw bytes), or creates the file with a new random
    /// key and mode 0600 when it does not exist. An existing file that is not a regular file,
    /// is accessible by group or others, or has the wrong length is refused (never replaced).
    /// The parent directory must exist.
    pub fn load_or_create(path: &Path) -> Result<Self, AuthError> {
        match Self::load(path) {
            Err(AuthError::KeyFileIo { source, .. }) if source.kind() == ErrorKind::NotFound => {}
            other => return other,
        }
        let key = Self::generate()?;
        let io = |source| AuthError::KeyFileIo {
            path: path.to_path_buf(),
            source,
        };
        let created = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        let mut file = match created {
            Ok(file) => file,
            // Someone else created it in the meantime: use theirs.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Self::load(path),
            Err(e) => return Err(io(e)),
        };
        file.write_all(&key.0).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(key)
    }

    /// Loads an existing key file, checking type, permissions and length.
    fn load(path: &Path) -> Result<Self, AuthError> {
        let io = |source| AuthError::KeyFileIo {
            path: path.to_path_buf(),
            source,
        };
        let rejected = |reason: String| AuthError::KeyFileRejected {
            path: path.to_path_buf(),
            reason,
        };
        let file = fs::File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(rejected("not a regular file".to_string()));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(rejected(format!(
                "it is accessible by group or others (mode {mode:03o}); run chmod 600 on it"
            )));
        }
        let mut bytes = Vec::with_capacity(KEY_LEN);
        file.take(KEY_LEN as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        <[u8; KEY_LEN]>::try_from(bytes.as_slice())
            .map(SecretKey)
            .map_err(|_| {
                rejected(format!(
                    "it must contain exactly {KEY_LEN} bytes, found {}{}",
                    bytes.len(),
                    if bytes.len() > KEY_LEN {
                        " or more"
                    } else {
                        ""
                    }
                ))
            })
    }

    /// Encrypts `plaintext` for the secret called `name`. Output: 12-byte random nonce, then
    /// ciphertext and 16-byte tag. The name is authenticated (associated data), so a sealed
    /// value only opens under the same name.
    pub fn seal(&self, name: &str, plaintext: &[u8]) -> Result<Vec<u8>, AuthError> {
        let nonce_bytes: [u8; NONCE_LEN] = os_random()?;
        let nonce = Nonce::from(nonce_bytes);
        let payload = Payload {
            msg: plaintext,
            aad: name.as_bytes(),
        };
        let sealed = self
            .cipher()
            .encrypt(&nonce, payload)
            .map_err(|_| AuthError::Seal(name.to_string()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Decrypts the output of [`SecretKey::seal`] for the secret called `name`. Fails on a
    /// wrong key, a different name, or truncated or modified data.
    pub fn open(&self, name: &str, sealed: &[u8]) -> Result<Vec<u8>, AuthError> {
        let fail = || AuthError::Open(name.to_string());
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(fail());
        }
        let (nonce_bytes, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce_bytes = <[u8; NONCE_LEN]>::try_from(nonce_bytes).map_err(|_| fail())?;
        let payload = Payload {
            msg: ciphertext,
            aad: name.as_bytes(),
        };
        self.cipher()
            .decrypt(&Nonce::from(nonce_bytes), payload)
            .map_err(|_| fail())
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(&Key::from(self.0))
    }
}

/// A secret value passed around the server. `Debug` and `Display` print `***`; use
/// [`SecretString::expose`] where the value is really needed. Not serializable on purpose.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }

    /// The actual value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        SecretString(value)
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Replaces every occurrence of each secret in `text` with `***`, preferring the longest
/// secret at each position. Secrets shorter than 4 characters are skipped (masking them would
/// garble logs without protecting much).
pub fn mask(text: &str, secrets: &[&str]) -> String {
    let mut secrets: Vec<&str> = secrets
        .iter()
        .copied()
        .filter(|s| s.chars().count() >= 4)
        .collect();
    if secrets.is_empty() {
        return text.to_string();
    }
    secrets.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    secrets.dedup();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if let Some(hit) = secrets.iter().find(|s| rest.starts_with(**s)) {
            out.push_str("***");
            rest = &rest[hit.len()..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn seal_open_round_trip() {
        let key = SecretKey::generate().unwrap();
        for plain in [&b""[..], b"x", b"hunter2", &[0u8; 5000]] {
            let sealed = key.seal("db-password", plain).unwrap();
            assert_eq!(sealed.len(), NONCE_LEN + plain.len() + TAG_LEN);
            assert_eq!(key.open("db-password", &sealed).unwrap(), plain);
        }
        // Random nonces: sealing twice gives different outputs.
        assert_ne!(
            key.seal("a", b"same").unwrap(),
            key.seal("a", b"same").unwrap()
        );
    }

    #[test]
    fn detects_tampering_wrong_name_and_wrong_key() {
        let key = SecretKey::generate().unwrap();
        let sealed = key.seal("prod/db", b"s3cret value").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(key.open("prod/db", &bad).is_err(), "flipped byte {i}");
        }
        assert!(key.open("prod/db", &sealed[..sealed.len() - 1]).is_err());
        assert!(
            key.open("prod/db", &sealed[..NONCE_LEN + TAG_LEN - 1])
                .is_err()
        );
        assert!(key.open("prod/db", &[]).is_err());
        let err = key.open("qa/db", &sealed).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot decrypt secret \"qa/db\": wrong key, wrong name or tampered data"
        );
        let other = SecretKey::generate().unwrap();
        assert!(other.open("prod/db", &sealed).is_err());
    }

    #[test]
    fn base64_keys() {
        let raw = [7u8; KEY_LEN];
        let std = base64::engine::general_purpose::STANDARD.encode(raw);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfb; KEY_LEN]);
        let a = SecretKey::from_base64(&format!(" {std}\n")).unwrap();
        assert_eq!(a, SecretKey(raw));
        assert_eq!(
            SecretKey::from_base64(&url).unwrap(),
            SecretKey([0xfb; KEY_LEN])
        );
        assert!(SecretKey::from_base64("c2hvcnQ=").is_err());
        assert!(SecretKey::from_base64("not base64!").is_err());
        assert_eq!(format!("{a:?}"), "SecretKey(***)");
    }

    #[test]
    fn key_file_is_created_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let key = SecretKey::load_or_create(&path).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(fs::read(&path).unwrap().len(), KEY_LEN);
        let again = SecretKey::load_or_create(&path).unwrap();
        assert_eq!(key, again);
        let sealed = key.seal("n", b"v").unwrap();
        assert_eq!(again.open("n", &sealed).unwrap(), b"v");
    }

    #[test]
    fn bad_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        fs::write(&path, [1u8; KEY_LEN]).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = SecretKey::load_or_create(&path).unwrap_err().to_string();
        assert!(
            err.contains("mode 644") && err.contains("chmod 600"),
            "{err}"
        );
        // Refused, not replaced.
        assert_eq!(fs::read(&path).unwrap(), [1u8; KEY_LEN]);

        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(
            SecretKey::load_or_create(&path).unwrap(),
            SecretKey([1; KEY_LEN])
        );

        for len in [0, 31, 33, 100] {
            let path = dir.path().join(format!("len{len}.key"));
            fs::write(&path, vec![0u8; len]).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            let err = SecretKey::load_or_create(&path).unwrap_err().to_string();
            assert!(err.contains("exactly 32 bytes"), "{err}");
        }
        let err = SecretKey::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, AuthError::KeyFileRejected { .. }), "{err}");
        let missing_dir = dir.path().join("nope/secret.key");
        let err = SecretKey::load_or_create(&missing_dir).unwrap_err();
        assert!(matches!(err, AuthError::KeyFileIo { .. }), "{err}");
    }

    #[test]
    fn secret_string_is_redacted() {
        let s = SecretString::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(SecretString::from("x".to_string()).expose(), "x");
    }

    #[test]
    fn masks_secrets() {
        let cases: [(&str, &[&str], &str); 7] = [
            ("password=hunter2!", &["hunter2"], "password=***!"),
            ("a hunter2 b hunter2", &["hunter2"], "a *** b ***"),
            ("key abcdef12", &["abcd", "abcdef12"], "key ***"),
            ("abc abcd", &["abc"], "abc abcd"),
            ("no secrets", &[], "no secrets"),
            ("ünïcødé tökén", &["tökén", ""], "ünïcødé ***"),
            ("xxsecretsecretxx", &["secret"], "xx******xx"),
        ];
        for (text, secrets, want) in cases {
            assert_eq!(mask(text, secrets), want, "{text}");
        }
    }
}
