//! Marathon label selectors for `GET /v2/apps?label=...`: `k`, `k==v`, `k!=v`,
//! `k in (a,b)`, `k notin (a,b)`, joined by commas (AND); `\` escapes a character.

use std::collections::BTreeMap;

/// One condition on a label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// The label exists.
    Exists(String),
    /// The label equals the value.
    Eq(String, String),
    /// The label is absent or differs.
    Ne(String, String),
    /// The label is one of the values.
    In(String, Vec<String>),
    /// The label is absent or none of the values.
    NotIn(String, Vec<String>),
}

/// A conjunction of conditions.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Selector(pub Vec<Condition>);

impl Selector {
    /// Parses a selector; the error names the offending part.
    pub fn parse(s: &str) -> Result<Selector, String> {
        let mut out = Vec::new();
        for part in split_top(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            out.push(parse_one(part).ok_or_else(|| format!("invalid label selector: '{part}'"))?);
        }
        Ok(Selector(out))
    }

    /// True when all conditions hold for `labels`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|c| match c {
            Condition::Exists(k) => labels.contains_key(k),
            Condition::Eq(k, v) => labels.get(k) == Some(v),
            Condition::Ne(k, v) => labels.get(k) != Some(v),
            Condition::In(k, vs) => labels.get(k).is_some_and(|x| vs.contains(x)),
            Condition::NotIn(k, vs) => labels.get(k).is_none_or(|x| !vs.contains(x)),
        })
    }
}

/// Splits on commas that are neither escaped nor inside parentheses.
fn split_top(s: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut depth = 0usize;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let last = parts.last_mut().expect("parts is never empty");
                last.push('\\');
                if let Some(n) = chars.next() {
                    last.push(n);
                }
            }
            '(' => {
                depth += 1;
                parts.last_mut().expect("parts is never empty").push(c);
            }
            ')' => {
                depth = depth.saturating_sub(1);
                parts.last_mut().expect("parts is never empty").push(c);
            }
            ',' if depth == 0 => parts.push(String::new()),
            _ => parts.last_mut().expect("parts is never empty").push(c),
        }
    }
    parts
}

/// Removes escapes.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.trim().chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Finds an unescaped occurrence of `pat`.
fn find_unescaped(s: &str, pat: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if s[i..].starts_with(pat) {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn parse_one(part: &str) -> Option<Condition> {
    if let Some(i) = find_unescaped(part, "==") {
        return Some(Condition::Eq(
            unescape(&part[..i]),
            unescape(&part[i + 2..]),
        ));
    }
    if let Some(i) = find_unescaped(part, "!=") {
        return Some(Condition::Ne(
            unescape(&part[..i]),
            unescape(&part[i + 2..]),
        ));
    }
    for (op, notin) in [(" notin ", true), (" in ", false)] {
        if let Some(i) = find_unescaped(part, op) {
            let key = unescape(&part[..i]);
            let rest = part[i + op.len()..].trim();
            let inner = rest.strip_prefix('(')?.strip_suffix(')')?;
            let values: Vec<String> = split_top(inner).iter().map(|v| unescape(v)).collect();
            return Some(if notin {
                Condition::NotIn(key, values)
            } else {
                Condition::In(key, values)
            });
        }
    }
    let key = unescape(part);
    (!key.is_empty() && !key.contains(' ')).then_some(Condition::Exists(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[track_caller]
    fn check(sel: &str, l: &[(&str, &str)], expected: bool) {
        let s = Selector::parse(sel).unwrap();
        assert_eq!(s.matches(&labels(l)), expected, "{sel} on {l:?}");
    }

    #[test]
    fn selectors() {
        check("HAPROXY_GROUP", &[("HAPROXY_GROUP", "external")], true);
        check(
            "HAPROXY_GROUP==external",
            &[("HAPROXY_GROUP", "external")],
            true,
        );
        check(
            "HAPROXY_GROUP!=external",
            &[("HAPROXY_GROUP", "external")],
            false,
        );
        check("env in (qa, prod)", &[("env", "prod")], true);
        check("env notin (qa,prod)", &[("env", "dev")], true);
        check("env notin (qa,prod)", &[], true);
        check("a==1, b", &[("a", "1")], false);
        check(r"a\,b==x", &[("a,b", "x")], true);
        assert!(Selector::parse("a in b").is_err());
    }
}
