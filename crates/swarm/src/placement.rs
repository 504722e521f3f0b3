//! Marathon `constraints` as Swarm placement: constraints (`==`/`!=`, ANDed), at most N
//! replicas per node, and spread preferences. What a Swarm cannot express is refused.

use crate::SwarmError;

/// Where a service's tasks may go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// Swarm constraint expressions (`node.hostname==a`, `node.labels.zone!=b`).
    pub constraints: Vec<String>,
    /// At most this many tasks per node (`hostname UNIQUE` = 1, `hostname MAX_PER n`).
    pub max_replicas_per_node: Option<u64>,
    /// Spread descriptors, highest precedence first (`node.labels.zone` for `zone GROUP_BY`).
    pub spread: Vec<String>,
}

/// The node attribute a Marathon constraint field names.
fn node_field(field: &str) -> String {
    match field {
        "hostname" | "@hostname" => "node.hostname".into(),
        _ => format!("node.labels.{field}"),
    }
}

/// The literal words of a regex that is a plain word or an alternation of plain words
/// (`a`, `^(a|b)$`); `None` when it uses other regex syntax. A dot counts as a literal dot
/// (in host names it almost always is meant so; `\\.` says it unambiguously).
fn literal_alternatives(re: &str) -> Option<Vec<String>> {
    let re = re.strip_prefix('^').unwrap_or(re);
    let re = re.strip_suffix('$').unwrap_or(re);
    let re = re
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or(re);
    let plain = |w: &str| {
        !w.is_empty()
            && w.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | ':' | '@' | '.')
            })
    };
    re.split('|')
        .map(|w| w.replace("\\.", "."))
        .map(|w| plain(&w).then_some(w))
        .collect()
}

/// Marathon's `constraints` as a Swarm placement, or the first one a Swarm cannot express.
pub fn placement(constraints: &[Vec<String>]) -> Result<Placement, SwarmError> {
    let mut p = Placement::default();
    for (i, c) in constraints.iter().enumerate() {
        let at = format!("/constraints({i})");
        let field = c.first().map(String::as_str).unwrap_or_default();
        let op = c.get(1).map(String::as_str).unwrap_or_default();
        let value = c.get(2).map(String::as_str);
        let attr = node_field(field);
        let unsupported = |why: &str| SwarmError::Unsupported {
            field: at.clone(),
            reason: format!(
                "[{field}, {op}{}] cannot be expressed as a Swarm placement: {why} (a Swarm supports hostname UNIQUE, hostname MAX_PER n, FIELD CLUSTER/IS value, FIELD GROUP_BY, FIELD LIKE/UNLIKE with a plain word or word|word; other fields are node labels)",
                value.map(|v| format!(", {v}")).unwrap_or_default()
            ),
        };
        let need = || value.ok_or_else(|| unsupported("the operator needs a value"));
        match op {
            "UNIQUE" if attr == "node.hostname" => p.max_replicas_per_node = Some(1),
            "UNIQUE" => {
                return Err(unsupported(
                    "a Swarm limits replicas per node, not per node label value",
                ));
            }
            "MAX_PER" if attr == "node.hostname" => {
                let v = need()?;
                let n = v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| unsupported("MAX_PER needs a positive number"))?;
                p.max_replicas_per_node = Some(n);
            }
            "MAX_PER" => {
                return Err(unsupported(
                    "a Swarm limits replicas per node, not per node label value",
                ));
            }
            "CLUSTER" | "IS" => {
                let v = need()?;
                p.constraints.push(format!("{attr}=={v}"));
            }
            "GROUP_BY" if attr == "node.hostname" => {
                // Swarm's scheduler already spreads a service's tasks over nodes.
            }
            "GROUP_BY" => p.spread.push(attr),
            "LIKE" => {
                let v = need()?;
                match literal_alternatives(v).as_deref() {
                    Some([one]) => p.constraints.push(format!("{attr}=={one}")),
                    _ => {
                        return Err(unsupported(
                            "Swarm constraints match exact values only (==, !=, ANDed): LIKE takes one plain word here",
                        ));
                    }
                }
            }
            "UNLIKE" => {
                let v = need()?;
                let words = literal_alternatives(v).ok_or_else(|| {
                    unsupported(
                        "Swarm constraints match exact values only: UNLIKE takes a plain word or word|word here",
                    )
                })?;
                for w in words {
                    p.constraints.push(format!("{attr}!={w}"));
                }
            }
            _ => return Err(unsupported("unknown operator")),
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn marathon_constraints_become_swarm_placement() {
        let p = placement(&[
            c(&["hostname", "CLUSTER", "node-a"]),
            c(&["zone", "IS", "b"]),
            c(&["hostname", "UNIQUE"]),
            c(&["rack", "GROUP_BY"]),
            c(&["hostname", "GROUP_BY"]),
            c(&["hostname", "LIKE", "^node-a$"]),
            c(&["hostname", "UNLIKE", "node-c|node-d"]),
            c(&["disk", "LIKE", "ssd"]),
        ])
        .unwrap();
        assert_eq!(
            p.constraints,
            vec![
                "node.hostname==node-a",
                "node.labels.zone==b",
                "node.hostname==node-a",
                "node.hostname!=node-c",
                "node.hostname!=node-d",
                "node.labels.disk==ssd",
            ]
        );
        assert_eq!(p.max_replicas_per_node, Some(1));
        assert_eq!(p.spread, vec!["node.labels.rack"]);
        let p = placement(&[c(&["hostname", "MAX_PER", "2"])]).unwrap();
        assert_eq!(p.max_replicas_per_node, Some(2));
        let p = placement(&[c(&["hostname", "LIKE", "host\\.example"])]).unwrap();
        assert_eq!(p.constraints, vec!["node.hostname==host.example"]);
    }

    #[test]
    fn what_a_swarm_cannot_express_is_refused_with_its_place() {
        for (bad, why) in [
            (c(&["hostname", "LIKE", "node-.*"]), "exact values"),
            (c(&["hostname", "LIKE", "a|b"]), "one plain word"),
            (c(&["zone", "UNIQUE"]), "per node"),
            (c(&["zone", "MAX_PER", "2"]), "per node"),
            (c(&["hostname", "MAX_PER", "x"]), "positive number"),
            (c(&["hostname", "CLUSTER"]), "needs a value"),
            (c(&["hostname", "NEAR", "x"]), "unknown operator"),
        ] {
            let e = placement(&[c(&["zone", "IS", "a"]), bad.clone()])
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("/constraints(1): "), "{bad:?}: {e}");
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
