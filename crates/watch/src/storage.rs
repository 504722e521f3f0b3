//! The store as PromQL sees it: matchers translated, samples as floats.

use promql::{MatchOp, Matcher, Series, Storage, StorageError};

/// A [`promql::Storage`] over the time-series store.
pub struct DbStorage<'a> {
    db: &'a tsdb::Db,
}

impl<'a> DbStorage<'a> {
    /// A view of `db`.
    pub fn new(db: &'a tsdb::Db) -> DbStorage<'a> {
        DbStorage { db }
    }
}

/// PromQL's matchers as the store's.
pub fn to_store_matchers(matchers: &[Matcher]) -> Result<Vec<tsdb::Matcher>, StorageError> {
    matchers
        .iter()
        .map(|m| {
            let op = match m.op {
                MatchOp::Equal => tsdb::MatchOp::Eq,
                MatchOp::NotEqual => tsdb::MatchOp::Ne,
                MatchOp::Regex => tsdb::MatchOp::Re,
                MatchOp::NotRegex => tsdb::MatchOp::Nre,
            };
            tsdb::Matcher::new(m.name.clone(), op, m.value.clone())
                .map_err(|e| StorageError(e.to_string()))
        })
        .collect()
}

impl Storage for DbStorage<'_> {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Series>, StorageError> {
        let m = to_store_matchers(matchers)?;
        let found = self
            .db
            .select(&m, start_ms, end_ms)
            .map_err(|e| StorageError(e.to_string()))?;
        Ok(found
            .into_iter()
            .map(|s| Series {
                labels: promql::Labels::new(s.labels.iter()),
                samples: s.samples.iter().map(|x| (x.t, x.v.as_f64())).collect(),
            })
            .collect())
    }
}
