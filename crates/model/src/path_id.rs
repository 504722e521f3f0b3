//! Marathon path ids (`/group/app`): parsing, canonicalisation against a base, and validation.

use std::fmt;

/// The regular expression every id segment must fully match, quoted in error messages.
///
/// This is Marathon's rule with one deliberate widening: uppercase letters are accepted
/// (case-preserving), because the seed's own app definitions use ids such as `/appName`.
/// The longest app or group id accepted (ids are paths, file names and labels elsewhere).
pub const MAX_ID_LEN: usize = 512;

pub const ID_PATTERN: &str = r"^(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])\.)*([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])|(\.|\.\.)$";

/// Last segments an app id may not end with, because they collide with sub-resources.
pub const RESERVED: [&str; 5] = ["restart", "tasks", "versions", ".", ".."];

/// An absolute, canonical path id such as `/prod/web`. The root is the empty path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PathId {
    segments: Vec<String>,
}

impl PathId {
    /// The root group `/`.
    pub fn root() -> Self {
        PathId::default()
    }

    /// Parses `raw` relative to `base` (absolute ids ignore the base), resolving `.` and `..`.
    /// Segments are not validated here; see [`PathId::problems`].
    pub fn parse_relative(raw: &str, base: &PathId) -> Self {
        let mut segments = if raw.starts_with('/') {
            Vec::new()
        } else {
            base.segments.clone()
        };
        for seg in raw.split('/').filter(|s| !s.is_empty()) {
            match seg {
                "." => {}
                ".." => {
                    segments.pop();
                }
                s => segments.push(s.to_string()),
            }
        }
        PathId { segments }
    }

    /// Parses an id the way clients send it after `/v2/apps/`: leading and doubled slashes are ignored.
    pub fn parse(raw: &str) -> Self {
        Self::parse_relative(raw, &PathId::root())
    }

    /// The path segments.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// True for `/`.
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    /// The parent group (`/a/b` → `/a`).
    pub fn parent(&self) -> PathId {
        let mut segments = self.segments.clone();
        segments.pop();
        PathId { segments }
    }

    /// True when `self` equals `other` or lies below it.
    pub fn starts_with(&self, other: &PathId) -> bool {
        self.segments.starts_with(&other.segments)
    }

    /// Marathon's legacy task id prefix: the id without the leading `/`, with `/` replaced by `_`.
    pub fn safe_name(&self) -> String {
        self.segments.join("_")
    }

    /// Validation problems of the raw id as an app id, in Marathon's wording (empty when valid).
    pub fn problems(raw: &str) -> Vec<String> {
        let mut out = Vec::new();
        if raw.len() > MAX_ID_LEN {
            out.push(format!(
                "must be at most {MAX_ID_LEN} characters long (got {})",
                raw.len()
            ));
            return out;
        }
        let segs: Vec<&str> = raw.split('/').filter(|s| !s.is_empty()).collect();
        if segs.is_empty() {
            out.push("path must not be empty or the root group".to_string());
            return out;
        }
        if segs.iter().any(|s| !segment_ok(s)) {
            out.push(format!(
                "must fully match regular expression '{ID_PATTERN}'"
            ));
        }
        if let Some(last) = segs.last()
            && RESERVED.contains(last)
        {
            out.push(
                "must not end with any of the following reserved keywords: restart, tasks, versions, ., .."
                    .to_string(),
            );
        }
        out
    }
}

/// Checks one segment against [`ID_PATTERN`] without a regex engine.
fn segment_ok(seg: &str) -> bool {
    if seg == "." || seg == ".." {
        return true;
    }
    seg.split('.').all(|label| {
        let b = label.as_bytes();
        let inner = |c: &u8| c.is_ascii_alphanumeric();
        !b.is_empty()
            && b.first().is_some_and(inner)
            && b.last().is_some_and(inner)
            && b.iter().all(|c| inner(c) || *c == b'-')
    })
}

impl fmt::Display for PathId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segments.is_empty() {
            return f.write_str("/");
        }
        for s in &self.segments {
            write!(f, "/{s}")?;
        }
        Ok(())
    }
}

impl serde::Serialize for PathId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PathId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(PathId::parse(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonicalises() {
        let base = PathId::parse("/a/b");
        assert_eq!(PathId::parse_relative("c", &base).to_string(), "/a/b/c");
        assert_eq!(PathId::parse_relative("../x", &base).to_string(), "/a/x");
        assert_eq!(PathId::parse_relative("/y/", &base).to_string(), "/y");
        assert_eq!(PathId::parse("//a/b").to_string(), "/a/b");
        assert_eq!(PathId::parse("/a/b").safe_name(), "a_b");
    }

    #[test]
    fn validates_segments() {
        for ok in ["/app", "/a-b/c.d", "x", "/0/9a", "/a.b-c.d", "/appName"] {
            assert!(PathId::problems(ok).is_empty(), "{ok}");
        }
        for bad in ["/a b", "/a_b", "/-a", "/a-", "/a..b", "/.a", "/a/b."] {
            assert_eq!(PathId::problems(bad).len(), 1, "{bad}");
        }
        assert!(PathId::problems("/a/restart")[0].contains("reserved"));
        assert!(!PathId::problems("/").is_empty());
    }
}
