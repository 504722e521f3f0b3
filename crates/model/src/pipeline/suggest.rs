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

/// Edit distance over characters where swapping two neighbours counts as one edit
/// (optimal string alignment): `wiat` is one edit from `wait`.
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_word_and_strangers_find_nothing() {
        let steps = ["build", "test", "deploy-qa", "deploy-prod"];
        assert_eq!(closest("buld", steps), Some("build"));
        assert_eq!(closest("wiat", ["wait", "live"]), Some("wait"));
        assert_eq!(closest("deploy-qb", steps), Some("deploy-qa"));
        assert_eq!(closest("Deploydc", ["DeployDC", "Env"]), Some("DeployDC"));
        assert_eq!(closest("zzz", steps), None);
        assert_eq!(closest("", steps), None);
    }
}
