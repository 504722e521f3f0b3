//! Near matches for names the server does not know (`/AA/prod/ordrs` → `/AA/prod/orders`).

/// The candidate closest to `wanted` (ASCII case-insensitive edit distance), when it is
/// close enough to be a likely typo: at most a third of the longer name's characters
/// differ (at least one). Ties go to the first candidate.
pub(crate) fn closest<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let wanted_lc = wanted.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = distance(&wanted_lc, &c.to_ascii_lowercase());
        let limit = (wanted.chars().count().max(c.chars().count()) / 3).max(1);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// ` (did you mean X?)` for the closest candidate, or nothing.
pub(crate) fn did_you_mean<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    closest(wanted, candidates)
        .map(|c| format!(" (did you mean {c}?)"))
        .unwrap_or_default()
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_name() {
        let apps = ["/AA/prod/orders", "/AA/qa/orders", "/BB/prod/orders"];
        assert_eq!(closest("/AA/prod/ordrs", apps), Some("/AA/prod/orders"));
        assert_eq!(closest("/aa/prod/orders", apps), Some("/AA/prod/orders"));
        assert_eq!(closest("/BB/prd/orders", apps), Some("/BB/prod/orders"));
        assert_eq!(
            closest("Deploydc", ["DeployDC", "DeployEnv"]),
            Some("DeployDC")
        );
        assert_eq!(
            closest("buld", ["build", "image", "qa-signoff"]),
            Some("build")
        );
        assert_eq!(closest("/web", apps), None);
        assert_eq!(closest("x", Vec::<&str>::new()), None);
    }

    #[test]
    fn the_hint_is_a_suffix() {
        assert_eq!(
            did_you_mean("/AA/prod/ordrs", ["/AA/prod/orders"]),
            " (did you mean /AA/prod/orders?)"
        );
        assert_eq!(did_you_mean("/zzz", ["/AA/prod/orders"]), "");
    }

    #[test]
    fn distances() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("same", "same"), 0);
    }
}
