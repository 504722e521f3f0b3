//! Query-string parsing the way Marathon clients send it: repeated keys, `status[]=`,
//! and case-insensitive booleans (`force=True` from Python clients).

/// Decoded query parameters in order.
#[derive(Clone, Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    /// Parses a raw query string.
    pub(crate) fn parse(raw: Option<&str>) -> Params {
        let Some(raw) = raw else {
            return Params::default();
        };
        Params(
            raw.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    /// First value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// All values of `key` (and `key[]`).
    pub(crate) fn all(&self, key: &str) -> Vec<&str> {
        let arr = format!("{key}[]");
        self.0
            .iter()
            .filter(|(k, _)| k == key || *k == arr)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A boolean parameter; `true`/`True`/`TRUE`/`1` are true, absent gives `default`.
    pub(crate) fn flag(&self, key: &str, default: bool) -> bool {
        match self.get(key) {
            None => default,
            Some(v) => v.eq_ignore_ascii_case("true") || v == "1" || v.is_empty(),
        }
    }
}

/// Percent-decoding with `+` as space.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_marathon_client_queries() {
        let p = Params::parse(Some(
            "embed=app.tasks&embed=app.counts&force=True&status%5B%5D=running&label=a%3D%3Db&x=%zz",
        ));
        assert_eq!(p.all("embed"), ["app.tasks", "app.counts"]);
        assert!(p.flag("force", false));
        assert!(!p.flag("scale", false));
        assert!(p.flag("missing", true));
        assert_eq!(p.all("status"), ["running"]);
        assert_eq!(p.get("label"), Some("a==b"));
        assert_eq!(p.get("x"), Some("%zz"));
        assert!(!Params::parse(Some("force=False")).flag("force", true));
    }
}
