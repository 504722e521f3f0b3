//! Database-level tests: behaviour, crash windows, corruption and concurrency; the
//! proptest model check is in `model.rs`.

use std::time::Duration;

use proptest::prelude::*;

use crate::*;

mod model;

fn opts() -> Options {
    Options {
        max_series: 3,
        sync_interval: Duration::from_secs(3600),
        chunk_samples: 3,
        compaction_windows_ms: [20_000, 60_000, 3_600_000],
        ..Options::default()
    }
}

/// How many segment files in `dir` start with `prefix` (`raw-`, `1m-`, `1h-`).
fn seg_files(dir: &std::path::Path, prefix: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with(prefix) && name.ends_with(".seg")
        })
        .count()
}

fn labels(i: usize) -> Labels {
    match i {
        0 => Labels::with_name("a", [("job", "x")]),
        1 => Labels::with_name("a", [("job", "y")]),
        2 => Labels::with_name("b", [("job", "x")]),
        _ => Labels::with_name("b", []),
    }
    .unwrap_or_else(|e| panic!("{e}"))
}

fn pt(i: usize, t: i64, v: Value) -> Point {
    Point {
        labels: labels(i),
        t,
        v,
    }
}

#[test]
fn db_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Db>();
}

#[test]
fn append_select_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    let r = db
        .append(&[
            pt(0, 1000, Value::Float(1.5)),
            pt(0, 2000, Value::Float(2.5)),
            pt(0, 1500, Value::Float(9.0)),
            pt(0, 2000, Value::Float(2.5)),
            pt(0, 2000, Value::Float(3.0)),
            pt(0, 3000, Value::Int(1)),
            pt(1, 1000, Value::Int(7)),
            pt(2, 1000, Value::Bool(true)),
            pt(3, 1000, Value::Float(0.0)),
        ])
        .unwrap();
    assert_eq!(r.accepted, 4);
    assert_eq!(r.duplicates, 1);
    let kinds: Vec<_> = r
        .errors
        .iter()
        .map(|(i, e)| (*i, std::mem::discriminant(e)))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (
                2,
                std::mem::discriminant(&Error::OutOfOrder { t: 0, last: 0 })
            ),
            (
                4,
                std::mem::discriminant(&Error::DuplicateTimestamp { t: 0 })
            ),
            (
                5,
                std::mem::discriminant(&Error::TypeConflict {
                    labels: String::new(),
                    existing: ValueKind::Float,
                    got: ValueKind::Float
                })
            ),
            (
                8,
                std::mem::discriminant(&Error::TooManySeries { limit: 0 })
            ),
        ]
    );
    let st = db.stats();
    assert_eq!(
        (
            st.rejected_out_of_order,
            st.rejected_type_conflict,
            st.rejected_too_many_series
        ),
        (1, 1, 1)
    );
    db.set_metadata(
        "a",
        Metadata {
            metric_type: MetricType::Counter,
            help: "A things".into(),
            unit: "".into(),
        },
    )
    .unwrap();
    let check = |db: &Db| {
        let s = db.select(&[Matcher::metric("a")], 0, 10_000).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0].samples,
            vec![
                Sample {
                    t: 1000,
                    v: Value::Float(1.5)
                },
                Sample {
                    t: 2000,
                    v: Value::Float(2.5)
                }
            ]
        );
        assert_eq!(
            s[1].samples,
            vec![Sample {
                t: 1000,
                v: Value::Int(7)
            }]
        );
        assert_eq!(db.label_values("job", &[], 0, 10_000), vec!["x", "y"]);
        assert_eq!(db.label_names(&[], 0, 10_000), vec!["__name__", "job"]);
        assert_eq!(
            db.series(&[Matcher::new("job", MatchOp::Re, "x").unwrap()], 0, 10_000)
                .len(),
            2
        );
        assert_eq!(db.metadata(Some("a"))[0].1.help, "A things");
    };
    check(&db);
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    check(&db);
    db.flush_all().unwrap();
    db.compact().unwrap();
    assert_eq!(db.stats().raw_samples_on_disk, 4);
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    check(&db);
    // The kind survives a reopen from segments only.
    let r = db.append(&[pt(0, 5000, Value::Int(1))]).unwrap();
    assert!(matches!(r.errors[0].1, Error::TypeConflict { .. }));
}

/// Stores one sample of `labels` at t = 1, which must be accepted.
fn store_one(db: &Db, labels: &Labels) {
    db.append(&[Point {
        labels: labels.clone(),
        t: 1,
        v: Value::Float(1.0),
    }])
    .unwrap()
    .into_result()
    .unwrap();
}

#[test]
fn intern_hands_out_the_stores_own_labels() {
    let dir = tempfile::tempdir().unwrap();
    let first = Labels::with_name("up", [("job", "a")]).unwrap();
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        store_one(&db, &first);
        let again = Labels::with_name("up", [("job", "a")]).unwrap();
        assert!(!again.same_allocation(&first));
        assert!(db.intern(again).same_allocation(&first));
        let unknown = Labels::with_name("up", [("job", "b")]).unwrap();
        assert!(db.intern(unknown.clone()).same_allocation(&unknown));
        db.close().unwrap();
    }
    // After a restart the store's copy is the one read back from the WAL.
    let db = Db::open(dir.path(), opts()).unwrap();
    let own = db.intern(first.clone());
    assert_eq!(own, first);
    assert!(!own.same_allocation(&first));
    assert!(db.intern(first.clone()).same_allocation(&own));
}

#[test]
fn labels_for_finds_the_stores_own_labels_without_building_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    let first = Labels::with_name("up", [("job", "a"), ("zone", "x")]).unwrap();
    store_one(&db, &first);
    // Pairs in any order, with empty values dropped, name the same series.
    let own = db
        .labels_for("up", [("zone", "x"), ("empty", ""), ("job", "a")])
        .unwrap();
    assert!(own.same_allocation(&first));
    // Another series gets a new label set, equal to what with_name builds.
    for pairs in [
        vec![("job", "b")],
        vec![("job", "a")],
        vec![("job", "a"), ("zone", "x"), ("k", "v")],
    ] {
        let new = db.labels_for("up", pairs.clone()).unwrap();
        assert!(!new.same_allocation(&first));
        let built = Labels::with_name("up", pairs).unwrap();
        assert_eq!(new, built);
        assert_eq!(new.hash_value(), built.hash_value());
    }
    assert!(matches!(
        db.labels_for("up", [("job", "a"), ("job", "b")]),
        Err(Error::InvalidLabels(_))
    ));
}

#[test]
fn label_sets_keep_pairs_hash_and_order() {
    let a = Labels::new([("b", "2"), ("a", "1"), ("c", "")]).unwrap();
    assert_eq!(a.iter().collect::<Vec<_>>(), vec![("a", "1"), ("b", "2")]);
    assert_eq!(a.get("a"), Some("1"));
    assert_eq!(a.get("b"), Some("2"));
    assert_eq!(a.get("c"), None);
    assert_eq!(a.len(), 2);
    let same = Labels::with_name("x", []).unwrap();
    assert_eq!(same.metric_name(), Some("x"));
    // Boundaries count: ("ab", "c") is not ("a", "bc").
    let x = Labels::new([("ab", "c")]).unwrap();
    let y = Labels::new([("a", "bc")]).unwrap();
    assert_ne!(x, y);
    assert!(y < x);
    assert!(
        Labels::new(Vec::<(String, String)>::new())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn second_open_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    assert!(matches!(
        Db::open(dir.path(), opts()),
        Err(Error::Locked { .. })
    ));
    drop(db);
    Db::open(dir.path(), opts()).unwrap();
}

#[test]
fn garbage_wal_tail_opens() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    for t in 0..10 {
        db.append(&[pt(0, t * 1000, Value::Float(t as f64))])
            .unwrap();
    }
    drop(db);
    let saved = wal_files(dir.path());
    // The samples are in the newest WAL generation.
    let (wal, full) = saved.last().cloned().unwrap();
    assert!(wal.to_string_lossy().contains("wal-"));
    // Torn at every length, and with garbage appended: opens, keeps a prefix.
    for cut in (0..full.len()).step_by(7).chain([full.len()]) {
        restore_wal_files(dir.path(), &saved);
        let mut bytes = full[..cut].to_vec();
        bytes.extend_from_slice(&[0x5a; 13]);
        std::fs::write(&wal, &bytes).unwrap();
        let db = Db::open(dir.path(), opts()).unwrap();
        let n = db
            .select(&[], 0, i64::MAX)
            .unwrap()
            .first()
            .map_or(0, |s| s.samples.len());
        assert!(n <= 10);
        if cut == full.len() {
            assert_eq!(n, 10);
        }
        drop(db);
    }
}

/// WAL and checkpoint files with their contents, sorted by name (checkpoints first).
fn wal_files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with("wal-") || n.starts_with("checkpoint-")
        })
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    v.sort();
    v
}

/// Replaces the WAL and checkpoint files with `saved`.
fn restore_wal_files(dir: &std::path::Path, saved: &[(std::path::PathBuf, Vec<u8>)]) {
    for (p, _) in wal_files(dir) {
        std::fs::remove_file(p).unwrap();
    }
    for (p, b) in saved {
        std::fs::write(p, b).unwrap();
    }
}

#[test]
fn corrupt_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    for t in 0..10 {
        db.append(&[pt(0, t * 1000, Value::Float(t as f64))])
            .unwrap();
    }
    db.flush_all().unwrap();
    drop(db);
    let seg = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("raw-"))
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    // A flipped bit in the data is found when the blob is read.
    bytes[12] ^= 1;
    std::fs::write(&seg, &bytes).unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    assert!(db.select(&[], 0, i64::MAX).is_err());
    drop(db);
    // A truncated segment fails the open with a clear error.
    std::fs::write(&seg, &bytes[..bytes.len() - 3]).unwrap();
    let err = Db::open(dir.path(), opts()).err().unwrap();
    assert!(err.to_string().contains("corrupt file"), "{err}");
}

#[test]
fn retention_drops_old_segments_and_series() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        retention_ms: 10_000,
        rollup_minute_retention_ms: 20_000,
        rollup_hour_retention_ms: 20_000,
        ..opts()
    };
    let db = Db::open(dir.path(), o).unwrap();
    for t in 0..6 {
        db.append(&[
            pt(0, t * 1000, Value::Float(1.0)),
            pt(1, 100_000 + t * 1000, Value::Float(1.0)),
        ])
        .unwrap();
    }
    db.flush_all().unwrap();
    let r = db.apply_retention(50_000).unwrap();
    assert_eq!(r.segments_deleted, 0, "segments span both series");
    let r = db.apply_retention(200_000).unwrap();
    assert_eq!(
        (r.segments_written, r.segments_deleted),
        (0, 1),
        "raw; no rollups for data past their retention"
    );
    assert_eq!(r.series_dropped, 2);
    let r = db.append(&[pt(0, 1000, Value::Float(1.0))]).unwrap();
    assert!(matches!(r.errors[0].1, Error::TooOld { .. }));
    assert_eq!(
        db.stats().series,
        1,
        "the rejected sample still created its series"
    );
}

#[test]
fn concurrent_appends_and_queries() {
    let dir = tempfile::tempdir().unwrap();
    let db = std::sync::Arc::new(
        Db::open(
            dir.path(),
            Options {
                chunk_samples: 16,
                ..Options::default()
            },
        )
        .unwrap(),
    );
    let maint = {
        let db = db.clone();
        std::thread::spawn(move || {
            for i in 0..40 {
                db.stats();
                db.compact().unwrap();
                db.apply_retention(1000).unwrap();
                db.select_rollup(&[], 0, 1000, Resolution::Minute).unwrap();
                db.label_values("w", &[], 0, 1000);
                if i % 10 == 0 {
                    db.flush_all().unwrap();
                }
            }
        })
    };
    let threads: Vec<_> = (0..4)
        .map(|w| {
            let db = db.clone();
            std::thread::spawn(move || {
                let l = Labels::with_name("m", [("w", w.to_string().as_str())]).unwrap();
                for t in 0..200 {
                    db.append(&[Point {
                        labels: l.clone(),
                        t,
                        v: Value::Float(t as f64),
                    }])
                    .unwrap();
                    if t % 50 == 0 {
                        db.select(&[Matcher::metric("m")], 0, 1000).unwrap();
                        db.flush().unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    maint.join().unwrap();
    let s = db.select(&[Matcher::metric("m")], 0, 1000).unwrap();
    assert_eq!(s.len(), 4);
    assert!(s.iter().all(|s| s.samples.len() == 200));
}

/// Regression: compaction once merged non-neighbouring segments, so a series' partial
/// buckets came back out of order.
#[test]
fn compaction_merges_only_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    for t in [0, 1000, 2000] {
        db.append(&[pt(2, t, Value::Float(t as f64))]).unwrap();
    }
    db.flush().unwrap();
    db.append(&[
        pt(2, 3000, Value::Float(1.0)),
        pt(0, -1000, Value::Float(0.0)),
    ])
    .unwrap();
    db.flush_all().unwrap();
    db.append(&[pt(2, 4000, Value::Float(2.0))]).unwrap();
    db.flush_all().unwrap();
    db.append(&[pt(2, 5000, Value::Float(2.5))]).unwrap();
    db.flush_all().unwrap();
    // Data past the end of the first windows, so they are complete and get merged.
    db.append(&[pt(2, 130_000, Value::Float(3.0))]).unwrap();
    db.flush_all().unwrap();
    let both = |db: &Db| {
        [Resolution::Minute, Resolution::Hour]
            .map(|res| db.select_rollup(&[], i64::MIN, i64::MAX, res).unwrap())
    };
    let [before, hours] = both(&db);
    assert_eq!(seg_files(dir.path(), "raw-"), 5);
    assert_eq!(seg_files(dir.path(), "1h-"), 0, "flushes write no rollups");
    db.compact().unwrap();
    assert_eq!(
        seg_files(dir.path(), "raw-"),
        4,
        "the two neighbours of window 0"
    );
    // The first four raw segments' windows are complete: their hours are rolled up;
    // the last one's (130 s, window 120–140 s) is not.
    assert_eq!(seg_files(dir.path(), "1h-"), 1);
    assert_eq!(both(&db), [before.clone(), hours]);
    assert_eq!(before[1].buckets[0].last_t, 5000);
    assert_eq!(before[1].buckets[0].increase, 2000.0 + 1.0 + 1.0 + 0.5);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// Random bytes as a segment or as the WAL: `open` errors or succeeds, never panics.
    #[test]
    fn open_never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..400), as_wal in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let name = if as_wal { "wal-0000000000000001" } else { "raw-0000000000000001.seg" };
        std::fs::write(dir.path().join(name), &bytes).unwrap();
        if let Ok(db) = Db::open(dir.path(), opts()) {
            let _ = db.select(&[], i64::MIN, i64::MAX);
        }
    }

    /// A valid segment with flipped bytes: errors, never panics.
    #[test]
    fn corrupted_segment_never_panics(flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4)) {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Db::open(dir.path(), opts()).unwrap();
            for t in 0..7 {
                db.append(&[pt(0, t * 1000, Value::Float(t as f64 / 3.0)), pt(1, t * 1000, Value::Int(t))]).unwrap();
            }
            db.flush_all().unwrap();
        }
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "seg") {
                let mut b = std::fs::read(&p).unwrap();
                for (i, x) in &flips {
                    let i = i.index(b.len());
                    b[i] ^= x;
                }
                std::fs::write(&p, &b).unwrap();
            }
        }
        if let Ok(db) = Db::open(dir.path(), opts()) {
            let _ = db.select(&[], i64::MIN, i64::MAX);
            let _ = db.select_rollup(&[], i64::MIN, i64::MAX, Resolution::Minute);
            let _ = db.compact();
        }
    }
}

#[test]
fn tick_syncs_flushes_and_expires() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        flush_interval: Duration::ZERO,
        sync_interval: Duration::ZERO,
        ..opts()
    };
    let db = Db::open(dir.path(), o).unwrap();
    for t in 0..10 {
        db.append(&[pt(0, t * 1000, Value::Float(1.0))]).unwrap();
    }
    let r = db.tick(20_000).unwrap();
    assert_eq!(
        r.segments_written, 1,
        "raw only: the window is not complete"
    );
    assert_eq!(db.stats().head_samples, 1);
    // The idle open chunk is closed and flushed (the windows are still open, so
    // nothing is merged nor rolled up), then raw (15 days) expires: its hours are
    // rolled up (2 years), its minutes are not (they would be past their 90 days).
    let r = db.tick(100 * 86_400_000).unwrap();
    assert_eq!((r.segments_written, r.segments_deleted), (2, 2), "{r:?}");
    assert_eq!(db.stats().segments, 1);
    let hour = db.select_rollup(&[], 0, 20_000, Resolution::Hour).unwrap();
    assert_eq!(hour[0].buckets[0].count, 10);
    assert!(
        db.select_rollup(&[], 0, 20_000, Resolution::Minute)
            .unwrap()
            .is_empty()
    );
    assert!(db.select(&[], 0, 20_000).unwrap().is_empty());
    let r = db.tick(1000 * 86_400_000).unwrap();
    assert_eq!((r.segments_deleted, r.series_dropped), (1, 1), "{r:?}");
}

/// Raw data that expires leaves its minute rollups behind: minute buckets give the same
/// answers before and after, also across a reopen, and a crash between writing the
/// rollups and deleting the raw segments doubles nothing.
#[test]
fn expiring_raw_data_leaves_minute_rollups() {
    let dir = tempfile::tempdir().unwrap();
    let day = 86_400_000;
    let o = Options {
        retention_ms: day,
        ..opts()
    };
    let db = Db::open(dir.path(), o.clone()).unwrap();
    for t in 0..200 {
        let v = Value::Float(f64::from((t * 37 % 101) as i32) / 4.0);
        db.append(&[pt(0, t * 7_200, v), pt(1, t * 7_200 + 3, Value::Int(t))])
            .unwrap();
        if t % 50 == 49 {
            db.flush().unwrap();
        }
    }
    db.flush_all().unwrap();
    assert_eq!(
        db.stats().segments,
        5,
        "5 flushes of raw segments, no rollups"
    );
    let all = |db: &Db| {
        [Resolution::Minute, Resolution::Hour]
            .map(|res| db.select_rollup(&[], i64::MIN, i64::MAX, res).unwrap())
    };
    let want = all(&db);
    assert_eq!(want[0][0].buckets.len(), 24);
    let seg_files = |dir: &std::path::Path| -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .map(|p| {
                let b = std::fs::read(&p).unwrap();
                (p, b)
            })
            .collect();
        v.sort();
        v
    };
    let before = seg_files(dir.path());
    // The first three raw segments end before the floor; the fourth reaches past it.
    // Their hours (no window was complete, so none were rolled up) and minutes.
    let r = db.apply_retention(day + 1_100_000).unwrap();
    assert_eq!((r.segments_written, r.segments_deleted), (2, 3), "{r:?}");
    let raw = db.select(&[], i64::MIN, i64::MAX).unwrap();
    assert_eq!(
        raw[0].samples[0].t,
        150 * 7_200,
        "older raw samples are gone"
    );
    assert_eq!(all(&db), want);
    // Reopened, compacted, and once more when the rest expires.
    drop(db);
    let db = Db::open(dir.path(), o.clone()).unwrap();
    assert_eq!(all(&db), want);
    db.compact_full().unwrap();
    assert_eq!(all(&db), want);
    let r = db.apply_retention(day + 10_000_000).unwrap();
    assert_eq!(r.segments_written, 2, "{r:?}");
    assert!(db.select(&[], i64::MIN, i64::MAX).unwrap().is_empty());
    assert_eq!(all(&db), want);
    db.compact_full().unwrap();
    assert_eq!(all(&db), want);
    drop(db);
    // A crash after the 1 m segment was written but before the raw segments were
    // deleted: they are deleted on open, as the 1 m segment names them.
    let after = seg_files(dir.path());
    for (p, b) in &before {
        std::fs::write(p, b).unwrap();
    }
    let db = Db::open(dir.path(), o).unwrap();
    assert_eq!(seg_files(dir.path()).len(), after.len());
    assert_eq!(all(&db), want);
}

/// A store written before minute rollups waited for the raw data to expire (format 1
/// segments, minute rollups of every flush next to the raw data) answers the same, and
/// expiring raw data does not roll up samples its old minute rollups already hold.
#[test]
fn format_1_minute_rollups_are_not_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let day = 86_400_000;
    let o = Options {
        retention_ms: day,
        ..opts()
    };
    let db = Db::open(dir.path(), o.clone()).unwrap();
    let v = |t: i64| Value::Float(f64::from((t * 37 % 101) as i32));
    for t in 0..100 {
        db.append(&[pt(0, t * 7_200, v(t))]).unwrap();
    }
    db.flush_all().unwrap();
    let want = db
        .select_rollup(&[], i64::MIN, i64::MAX, Resolution::Minute)
        .unwrap();
    drop(db);
    // What the previous version's flush wrote besides: the minute rollups, format 1.
    let mut buckets = Vec::new();
    crate::rollup::aggregate(
        (0..100).map(|t| (t * 7_200, v(t).as_f64())),
        60_000,
        &mut buckets,
    );
    crate::segment::write_v1_rollup(
        dir.path(),
        crate::segment::SegKind::Rollup(Resolution::Minute),
        1_000,
        &labels(0),
        ValueKind::Float,
        &buckets,
    );
    let db = Db::open(dir.path(), o.clone()).unwrap();
    assert_eq!(
        db.select_rollup(&[], i64::MIN, i64::MAX, Resolution::Minute)
            .unwrap(),
        want
    );
    for t in 100..150 {
        db.append(&[pt(0, t * 7_200, v(t))]).unwrap();
    }
    db.flush_all().unwrap();
    let want = db
        .select_rollup(&[], i64::MIN, i64::MAX, Resolution::Minute)
        .unwrap();
    assert_eq!(want[0].buckets.iter().map(|b| b.count).sum::<u64>(), 150);
    // Everything raw expires: only the samples after the old rollups are rolled up
    // (and all of them into hours, which the old version wrote separately).
    let r = db.apply_retention(day + 10_000_000).unwrap();
    assert_eq!(r.segments_written, 2, "{r:?}");
    assert!(db.select(&[], i64::MIN, i64::MAX).unwrap().is_empty());
    let got = db
        .select_rollup(&[], i64::MIN, i64::MAX, Resolution::Minute)
        .unwrap();
    assert_eq!(got, want);
    db.compact_full().unwrap();
    drop(db);
    let db = Db::open(dir.path(), o).unwrap();
    assert_eq!(
        db.select_rollup(&[], i64::MIN, i64::MAX, Resolution::Minute)
            .unwrap(),
        want
    );
}

/// Regression: after a reopen from segments, the same timestamp with another value was
/// taken for an identical duplicate because the last value was not restored.
#[test]
fn last_value_survives_reopen_from_segments() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    for (t, v) in [(0, 0.0), (1000, 0.0), (2000, 1.0)] {
        db.append(&[pt(1, t, Value::Float(v))]).unwrap();
    }
    db.flush().unwrap();
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    let r = db
        .append(&[
            pt(1, 2000, Value::Float(0.0)),
            pt(1, 2000, Value::Float(1.0)),
        ])
        .unwrap();
    assert!(matches!(
        r.errors[..],
        [(0, Error::DuplicateTimestamp { t: 2000 })]
    ));
    assert_eq!(r.duplicates, 1);
}

/// A crash after a flush wrote its segments but before the WAL checkpoint: the old WAL
/// replays samples that are also in the segments, and none is doubled.
#[test]
fn crash_between_segment_and_checkpoint_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    for t in 0..8 {
        db.append(&[
            pt(0, t * 1000, Value::Float(t as f64)),
            pt(1, t * 1000, Value::Int(t)),
        ])
        .unwrap();
    }
    db.sync().unwrap();
    let want = db.select(&[], i64::MIN, i64::MAX).unwrap();
    let old_wal = wal_files(dir.path());
    db.flush().unwrap();
    drop(db);
    restore_wal_files(dir.path(), &old_wal);
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(db.select(&[], i64::MIN, i64::MAX).unwrap(), want);
    let rolled = db
        .select_rollup(&[], i64::MIN, i64::MAX, Resolution::Minute)
        .unwrap();
    assert_eq!(rolled[0].buckets[0].count, 8);
}

/// A crash after compaction renamed the merged segment but before it deleted the
/// sources: the sources are deleted on open, and no sample is doubled.
#[test]
fn crash_before_compaction_cleanup_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    for t in 0..12 {
        db.append(&[pt(0, t * 1000, Value::Float(t as f64))])
            .unwrap();
        if t % 3 == 2 {
            db.flush().unwrap();
        }
    }
    // Data past the raw window's end, so that window is complete.
    db.append(&[pt(0, 200_000, Value::Float(0.0))]).unwrap();
    db.flush_all().unwrap();
    let want = db.select(&[], i64::MIN, i64::MAX).unwrap();
    let segs = |dir: &std::path::Path| -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .map(|p| {
                let b = std::fs::read(&p).unwrap();
                (p, b)
            })
            .collect();
        v.sort();
        v
    };
    let hours = |db: &Db| {
        db.select_rollup(&[], i64::MIN, i64::MAX, Resolution::Hour)
            .unwrap()
    };
    let want_hours = hours(&db);
    let before = segs(dir.path());
    // Five flushes of a raw segment each (rollups wait for a complete window or for
    // the raw data to expire).
    assert_eq!(before.len(), 5);
    db.compact().unwrap();
    drop(db);
    // Raw: the first four merged plus the last; 1 h: the hours of the merged one,
    // whose window is complete.
    assert_eq!(segs(dir.path()).len(), 3);
    for (p, b) in &before {
        std::fs::write(p, b).unwrap();
    }
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(db.stats().segments, 3);
    assert_eq!(segs(dir.path()).len(), 3);
    assert_eq!(db.select(&[], i64::MIN, i64::MAX).unwrap(), want);
    assert_eq!(hours(&db), want_hours);
    // A second pass after the restart finds the hours rolled up already.
    assert_eq!(db.compact().unwrap().segments_written, 0);
    assert_eq!(hours(&db), want_hours);
}

/// A series that stops receiving samples is closed by `tick`, flushed, and finally
/// forgotten when its data expires.
#[test]
fn idle_series_leave_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        flush_interval: Duration::ZERO,
        chunk_samples: 100,
        ..opts()
    };
    let span = o.chunk_span_ms;
    let db = Db::open(dir.path(), o).unwrap();
    db.append(&[pt(0, 1000, Value::Float(1.0))]).unwrap();
    db.tick(2000).unwrap();
    assert_eq!(db.stats().head_samples, 1);
    db.tick(1000 + span + 1).unwrap();
    assert_eq!(db.stats().head_samples, 0);
    assert_eq!(db.select(&[], 0, 5000).unwrap()[0].samples.len(), 1);
    let r = db.tick(1000 * 86_400_000).unwrap();
    assert_eq!(r.series_dropped, 1);
    assert_eq!(db.stats().series, 0);
}

/// A crash after a checkpoint switched appends to a new WAL generation but before it
/// wrote the new checkpoint file: the old checkpoint and every later generation replay.
#[test]
fn crash_before_checkpoint_file_keeps_both_generations() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    db.append(&[pt(0, 1000, Value::Float(1.0))]).unwrap();
    db.sync().unwrap();
    let before = wal_files(dir.path());
    db.flush().unwrap();
    db.append(&[pt(0, 2000, Value::Float(2.0))]).unwrap();
    db.sync().unwrap();
    drop(db);
    let after = wal_files(dir.path());
    let newest_wal = after
        .iter()
        .rfind(|(p, _)| p.to_string_lossy().contains("wal-"))
        .cloned()
        .unwrap();
    restore_wal_files(dir.path(), &before);
    std::fs::write(&newest_wal.0, &newest_wal.1).unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    let s = db.select(&[], i64::MIN, i64::MAX).unwrap();
    let ts: Vec<i64> = s[0].samples.iter().map(|x| x.t).collect();
    assert_eq!(ts, vec![1000, 2000]);
}

/// A checkpoint is renamed into place only when complete, so a bad record in it is
/// corruption and opening says so (a torn WAL generation, in contrast, just ends).
#[test]
fn corrupt_checkpoint_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    db.append(&[pt(0, 1000, Value::Float(1.0))]).unwrap();
    db.flush().unwrap();
    drop(db);
    let (cp, mut bytes) = wal_files(dir.path())
        .into_iter()
        .find(|(p, _)| p.to_string_lossy().contains("checkpoint-"))
        .unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&cp, &bytes).unwrap();
    let err = Db::open(dir.path(), opts()).err().unwrap();
    assert!(err.to_string().contains("corrupt file"), "{err}");
}

/// In a window still filling, compaction merges 16 segments of one level into one of
/// the next: the segment count stays bounded and every sample stays in place.
#[test]
fn filling_window_compaction_is_tiered() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        chunk_samples: 1,
        compaction_windows_ms: [i64::MAX / 4; 3],
        ..opts()
    };
    let db = Db::open(dir.path(), o.clone()).unwrap();
    let mut most = 0;
    for t in 0..300 {
        db.append(&[
            pt(0, t * 1000, Value::Float(t as f64)),
            pt(1, t * 7, Value::Int(t)),
        ])
        .unwrap();
        db.flush().unwrap();
        db.compact().unwrap();
        most = most.max(db.stats().segments);
    }
    // 300 flushes per kind: at most 15 level-0, 15 level-1 and 1 level-2 segments.
    assert!(most <= 3 * 31, "{most}");
    let check = |db: &Db| {
        let s = db.select(&[], i64::MIN, i64::MAX).unwrap();
        assert_eq!(
            s.iter().map(|s| s.samples.len()).collect::<Vec<_>>(),
            vec![300, 300]
        );
        let r = db
            .select_rollup(&[], i64::MIN, i64::MAX, Resolution::Hour)
            .unwrap();
        assert_eq!(r[0].buckets[0].count, 300);
        assert_eq!(db.stats().raw_samples_on_disk, 600);
    };
    check(&db);
    drop(db);
    check(&Db::open(dir.path(), o).unwrap());
}

/// A store written by the previous version (format 2 raw segments: absolute index
/// entries, XOR chunks) opens, answers, takes new samples after them, and compaction
/// rewrites everything into the current format (4) with the same answers.
#[test]
fn format_2_raw_segments_are_read_and_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let series: Vec<_> = (0..3)
        .map(|i| {
            let samples: Vec<(i64, u64)> = (0..50)
                .map(|t| (t * 10_000 + i as i64, (t as f64 * 1.1 + i as f64).to_bits()))
                .collect();
            (labels(i), ValueKind::Float, samples)
        })
        .collect();
    crate::segment::write_v2_raw(dir.path(), 1, &series);
    // One compaction window for everything, so compaction rewrites the old file.
    let o = Options {
        compaction_windows_ms: Options::default().compaction_windows_ms,
        ..opts()
    };
    let db = Db::open(dir.path(), o.clone()).unwrap();
    let check = |db: &Db, n: usize| {
        let got = db.select(&[], i64::MIN, i64::MAX).unwrap();
        assert_eq!(got.len(), 3);
        for (s, (l, _, want)) in got.iter().zip(&series) {
            assert_eq!(&s.labels, l);
            assert_eq!(s.samples.len(), n);
            for (a, &(t, bits)) in s.samples.iter().zip(want) {
                assert_eq!((a.t, a.v.to_bits()), (t, bits));
            }
        }
    };
    check(&db, 50);
    // The newest value came back from the old index: a changed value at the same
    // timestamp is a conflict, a new one after it is stored.
    let r = db.append(&[pt(0, 490_000, Value::Float(0.5))]).unwrap();
    assert!(matches!(
        r.errors[..],
        [(0, Error::DuplicateTimestamp { .. })]
    ));
    let more: Vec<_> = (0..3)
        .map(|i| pt(i, 500_000 + i as i64, Value::Float(50.0 * 1.1 + i as f64)))
        .collect();
    db.append(&more).unwrap().into_result().unwrap();
    db.flush_all().unwrap();
    db.compact_full().unwrap();
    check(&db, 51);
    drop(db);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    for n in &names {
        let bytes = std::fs::read(dir.path().join(n)).unwrap();
        assert_eq!(&bytes[..8], b"SLWSEG04", "{n}");
    }
    let db = Db::open(dir.path(), o.clone()).unwrap();
    check(&db, 51);
}

/// After a flush the checkpoint does not repeat the series whose data is all in
/// segments; a later sample of such a series is logged with its series record, so it
/// survives a reopen (and so does one after a second checkpoint).
#[test]
fn checkpoint_leaves_out_series_held_by_segments() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint_len = |dir: &std::path::Path| -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name().to_string_lossy().starts_with("checkpoint-"))
            .map(|e| e.metadata().unwrap().len())
            .sum()
    };
    let db = Db::open(dir.path(), opts()).unwrap();
    for t in 0..10 {
        let pts: Vec<_> = (0..3)
            .map(|i| pt(i, t * 1_000, Value::Float(t as f64)))
            .collect();
        db.append(&pts).unwrap().into_result().unwrap();
    }
    db.flush_all().unwrap();
    assert_eq!(checkpoint_len(dir.path()), 0);
    // Series 1 gets a sample (logged with its series record), series 2 does not.
    db.append(&[pt(1, 10_000, Value::Float(10.0))])
        .unwrap()
        .into_result()
        .unwrap();
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    let counts = |db: &Db| -> Vec<usize> {
        db.select(&[], i64::MIN, i64::MAX)
            .unwrap()
            .iter()
            .map(|s| s.samples.len())
            .collect()
    };
    assert_eq!(counts(&db), [10, 11, 10]);
    // The open's checkpoint holds series 1 (a sample in the head) only.
    let one = checkpoint_len(dir.path());
    assert!(one > 0);
    db.flush().unwrap();
    db.append(&[
        pt(0, 10_000, Value::Float(10.0)),
        pt(2, 10_000, Value::Float(10.0)),
    ])
    .unwrap()
    .into_result()
    .unwrap();
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(counts(&db), [11, 11, 11]);
    // Duplicates and conflicts still known for the series held by segments only.
    let r = db.append(&[pt(2, 10_000, Value::Float(11.0))]).unwrap();
    assert!(matches!(
        r.errors[..],
        [(0, Error::DuplicateTimestamp { .. })]
    ));
}

/// Full-precision random walks go through segments in binary value columns (smaller
/// than XOR) and come back bit for bit, across a reopen and a compaction.
#[test]
fn full_precision_floats_roundtrip_through_segments() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        chunk_samples: 240,
        ..opts()
    };
    let db = Db::open(dir.path(), o.clone()).unwrap();
    let mut state = 7u64;
    let mut x = [700.25, 300.5, -500.0];
    let mut want: Vec<Vec<(i64, u64)>> = vec![Vec::new(); 3];
    for t in 0..500i64 {
        let mut pts = Vec::new();
        for (i, x) in x.iter_mut().enumerate() {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *x += (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
            let v = if t == 250 && i == 1 {
                f64::from_bits(0x7ff0_0000_0000_0002)
            } else {
                *x
            };
            want[i].push((t * 7_200, v.to_bits()));
            pts.push(pt(i, t * 7_200, Value::Float(v)));
        }
        db.append(&pts).unwrap().into_result().unwrap();
    }
    db.flush_all().unwrap();
    db.compact_full().unwrap();
    let st = db.stats();
    // The same samples as XOR chunks alone, without the segment's index and headers:
    // the whole segment is smaller (the chunk with the staleness marker stays XOR).
    let xor: usize = want
        .iter()
        .flat_map(|w| w.chunks(240))
        .map(|c| {
            let mut a = crate::chunk::Appender::new();
            for &(t, v) in c {
                a.append(t, v);
            }
            a.to_bytes().len()
        })
        .sum();
    assert!(
        st.raw_bytes_on_disk + 500 < xor as u64,
        "{} bytes for {} samples, XOR chunks {xor}",
        st.raw_bytes_on_disk,
        st.raw_samples_on_disk
    );
    drop(db);
    let db = Db::open(dir.path(), o).unwrap();
    let got = db.select(&[], i64::MIN, i64::MAX).unwrap();
    assert_eq!(got.len(), 3);
    for (s, w) in got.iter().zip(&want) {
        let g: Vec<(i64, u64)> = s.samples.iter().map(|x| (x.t, x.v.to_bits())).collect();
        assert_eq!(&g, w);
    }
}
