//! Near matches for misspelt names (`buld` → `build`, `Deploydc` → `DeployDC`).

/// The candidate closest to `word` by edit distance (case-insensitive), when it is close
/// enough to be a likely typo: at most a third of the word's length, and at least 1.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (distance(&word.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_word_and_strangers_find_nothing() {
        let steps = ["build", "test", "deploy-qa", "deploy-prod"];
        assert_eq!(closest("buld", steps), Some("build"));
        assert_eq!(closest("deploy-qb", steps), Some("deploy-qa"));
        assert_eq!(closest("Deploydc", ["DeployDC", "Env"]), Some("DeployDC"));
        assert_eq!(closest("zzz", steps), None);
        assert_eq!(closest("", steps), None);
    }
}
