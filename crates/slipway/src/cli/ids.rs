//! App and task ids as the user types them versus how they appear in URLs and output.

/// An app id normalised to Marathon's absolute form (`/group/app`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AppId(String);

impl AppId {
    /// Normalises `raw`: surrounding whitespace and slashes are dropped, then one leading
    /// `/` is added. Repeated inner slashes collapse (`a//b` is `/a/b`).
    pub(crate) fn new(raw: &str) -> AppId {
        let segments: Vec<&str> = raw.trim().split('/').filter(|s| !s.is_empty()).collect();
        AppId(format!("/{}", segments.join("/")))
    }

    /// The absolute id for display, e.g. `/web`.
    pub(crate) fn display(&self) -> &str {
        &self.0
    }

    /// The id without its leading slash, percent-encoded for use after `/v2/apps/`.
    pub(crate) fn path(&self) -> String {
        encode(&self.0[1..], true)
    }
}

impl std::fmt::Display for AppId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Percent-encodes one path segment (a task or deployment id: `/` is encoded too).
pub(crate) fn segment(raw: &str) -> String {
    encode(raw, false)
}

/// Percent-encodes every byte outside RFC 3986 unreserved characters (and `/` when
/// `keep_slash`); valid Marathon ids come out unchanged.
fn encode(raw: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        let plain = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/');
        if plain {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_normalised_with_one_leading_slash() {
        let check = |raw: &str, display: &str, path: &str| {
            let id = AppId::new(raw);
            assert_eq!(id.display(), display, "{raw}");
            assert_eq!(id.path(), path, "{raw}");
        };
        check("web", "/web", "web");
        check("/web", "/web", "web");
        check("//prod/web/", "/prod/web", "prod/web");
        check(" prod//api.v2 ", "/prod/api.v2", "prod/api.v2");
        check("a b?", "/a b?", "a%20b%3F");
    }

    #[test]
    fn segments_encode_slashes() {
        assert_eq!(segment("web.4f1c-9a"), "web.4f1c-9a");
        assert_eq!(segment("a/b#c"), "a%2Fb%23c");
    }
}
