//! Inverted index: label name → value → sorted postings of series ids.

use std::collections::{BTreeMap, HashMap};

use crate::labels::{Labels, MatchOp, Matcher, hash_sorted};

/// Series id, dense and never reused within one open database.
pub(crate) type SeriesId = u32;

/// Series ids by label set. Found by a label set, or by sorted pairs without building
/// one ([`crate::Db::labels_for`]), so a collector that appends the same series every
/// round builds no label sets for them (issue 16).
#[derive(Default)]
pub(crate) struct SeriesByLabels {
    table: hashbrown::HashTable<(Labels, SeriesId)>,
}

impl SeriesByLabels {
    pub(crate) fn get(&self, labels: &Labels) -> Option<SeriesId> {
        self.get_key_value(labels).map(|(_, id)| id)
    }

    /// The stored label set equal to `labels`, and its series.
    pub(crate) fn get_key_value(&self, labels: &Labels) -> Option<(&Labels, SeriesId)> {
        self.table
            .find(labels.hash_value(), |(l, _)| l == labels)
            .map(|(l, id)| (l, *id))
    }

    /// The stored label set made of `sorted` (pairs sorted by name, no empty value).
    pub(crate) fn find_sorted(&self, sorted: &[(&str, &str)]) -> Option<&Labels> {
        self.table
            .find(hash_sorted(sorted), |(l, _)| l.eq_sorted(sorted))
            .map(|(l, _)| l)
    }

    /// Adds a label set that is not in the table.
    pub(crate) fn insert(&mut self, labels: Labels, id: SeriesId) {
        let hash = labels.hash_value();
        self.table
            .insert_unique(hash, (labels, id), |(l, _)| l.hash_value());
    }

    pub(crate) fn remove(&mut self, labels: &Labels) {
        if let Ok(entry) = self
            .table
            .find_entry(labels.hash_value(), |(l, _)| l == labels)
        {
            entry.remove();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.table.capacity()
    }

    pub(crate) fn shrink_to_fit(&mut self) {
        self.table.shrink_to_fit(|(l, _)| l.hash_value());
    }
}

#[derive(Default)]
pub(crate) struct Index {
    postings: HashMap<String, BTreeMap<String, Vec<SeriesId>>>,
    all: Vec<SeriesId>,
}

fn insert_sorted(v: &mut Vec<SeriesId>, id: SeriesId) {
    match v.last() {
        Some(&l) if l < id => v.push(id),
        None => v.push(id),
        _ => {
            if let Err(i) = v.binary_search(&id) {
                v.insert(i, id);
            }
        }
    }
}

fn remove_sorted(v: &mut Vec<SeriesId>, id: SeriesId) {
    if let Ok(i) = v.binary_search(&id) {
        v.remove(i);
    }
}

fn intersect(a: &[SeriesId], b: &[SeriesId]) -> Vec<SeriesId> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn union(lists: Vec<&Vec<SeriesId>>) -> Vec<SeriesId> {
    match lists.len() {
        0 => Vec::new(),
        1 => lists[0].clone(),
        _ => {
            let mut out: Vec<SeriesId> = lists.into_iter().flatten().copied().collect();
            out.sort_unstable();
            out.dedup();
            out
        }
    }
}

fn subtract(a: &[SeriesId], b: &[SeriesId]) -> Vec<SeriesId> {
    a.iter()
        .copied()
        .filter(|id| b.binary_search(id).is_err())
        .collect()
}

impl Index {
    pub(crate) fn add(&mut self, id: SeriesId, labels: &Labels) {
        for (k, v) in labels.iter() {
            let values = self.postings.entry(k.to_string()).or_default();
            insert_sorted(values.entry(v.to_string()).or_default(), id);
        }
        insert_sorted(&mut self.all, id);
    }

    pub(crate) fn remove(&mut self, id: SeriesId, labels: &Labels) {
        for (k, v) in labels.iter() {
            if let Some(values) = self.postings.get_mut(k) {
                if let Some(p) = values.get_mut(v) {
                    remove_sorted(p, id);
                    if p.is_empty() {
                        values.remove(v);
                    }
                }
                if values.is_empty() {
                    self.postings.remove(k);
                }
            }
        }
        remove_sorted(&mut self.all, id);
    }

    /// Sorted ids of series matching all matchers (all series for none).
    pub(crate) fn select(&self, matchers: &[Matcher]) -> Vec<SeriesId> {
        // Cheapest first: equality matchers on a non-empty value.
        let mut order: Vec<&Matcher> = matchers.iter().collect();
        order.sort_by_key(|m| match m.op {
            MatchOp::Eq if !m.value.is_empty() => 0,
            MatchOp::Re => 1,
            _ => 2,
        });
        let mut acc: Option<Vec<SeriesId>> = None;
        for m in order {
            let set = self.matching(m);
            let next = match acc {
                None => set,
                Some(a) => intersect(&a, &set),
            };
            if next.is_empty() {
                return next;
            }
            acc = Some(next);
        }
        acc.unwrap_or_else(|| self.all.clone())
    }

    fn matching(&self, m: &Matcher) -> Vec<SeriesId> {
        let values = self.postings.get(&m.name);
        if m.matches("") {
            // Series without the label match too: all minus those with a non-matching value.
            let Some(values) = values else {
                return self.all.clone();
            };
            let excluded = union(
                values
                    .iter()
                    .filter(|(v, _)| !m.matches(v))
                    .map(|(_, p)| p)
                    .collect(),
            );
            subtract(&self.all, &excluded)
        } else {
            let Some(values) = values else {
                return Vec::new();
            };
            if m.op == MatchOp::Eq {
                return values.get(&m.value).cloned().unwrap_or_default();
            }
            union(
                values
                    .iter()
                    .filter(|(v, _)| m.matches(v))
                    .map(|(_, p)| p)
                    .collect(),
            )
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.all.len()
    }

    pub(crate) fn mem_size(&self) -> usize {
        let mut n = self.all.capacity() * 4;
        for (k, values) in &self.postings {
            n += k.len() + 48;
            for (v, p) in values {
                n += v.len() + 64 + p.capacity() * 4;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_with_all_ops() {
        let mut ix = Index::default();
        let a = Labels::with_name("up", [("job", "api")]).unwrap();
        let b = Labels::with_name("up", [("job", "db"), ("zone", "x")]).unwrap();
        let c = Labels::with_name("cpu", []).unwrap();
        ix.add(1, &a);
        ix.add(2, &b);
        ix.add(3, &c);
        let sel = |ms: Vec<Matcher>, ix: &Index| ix.select(&ms);
        assert_eq!(sel(vec![Matcher::metric("up")], &ix), vec![1, 2]);
        assert_eq!(
            sel(vec![Matcher::new("job", MatchOp::Ne, "api").unwrap()], &ix),
            vec![2, 3]
        );
        assert_eq!(
            sel(vec![Matcher::new("zone", MatchOp::Eq, "").unwrap()], &ix),
            vec![1, 3]
        );
        assert_eq!(
            sel(
                vec![Matcher::new("job", MatchOp::Re, "a.*|d.").unwrap()],
                &ix
            ),
            vec![1, 2]
        );
        assert_eq!(
            sel(vec![Matcher::new("job", MatchOp::Nre, "a.*").unwrap()], &ix),
            vec![2, 3]
        );
        assert_eq!(sel(vec![], &ix), vec![1, 2, 3]);
        ix.remove(2, &b);
        assert_eq!(ix.select(&[Matcher::metric("up")]), vec![1]);
        assert_eq!(ix.len(), 2);
    }
}
