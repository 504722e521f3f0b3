//! Store round-trips against a real SQLite file.

use super::*;
use serde_json::json;
use std::time::Duration;

fn app(id: &str, version: i64) -> AppDefinition {
    let body = json!({"id": id, "cmd": "sleep 1"});
    model::parse_definition(body.to_string().as_bytes(), None, Timestamp(version)).unwrap()
}

#[test]
fn survives_reopen_and_keeps_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slipway.db");
    {
        let store = Store::open(&path).unwrap();
        store
            .write(|tx| {
                tx.put_app(&app("/a", 1000))?;
                tx.put_app(&app("/a", 2000))?;
                tx.put_task("a.1", &PathId::parse("/a"), &json!({"pid": 1}))?;
                tx.put_deployment("d1", 5, &json!({"id": "d1"}))?;
                tx.put_runtime(&PathId::parse("/a"), &json!({"delay": 1}))?;
                tx.set_meta("agent", "x")
            })
            .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let snap = store.load().unwrap();
    assert_eq!(snap.apps.len(), 1);
    assert_eq!(snap.apps[0].version, Timestamp(2000));
    assert_eq!(snap.tasks, vec![("a.1".to_string(), json!({"pid": 1}))]);
    assert_eq!(snap.deployments.len(), 1);
    assert_eq!(snap.runtime.len(), 1);
    assert_eq!(store.meta("agent").unwrap().as_deref(), Some("x"));
    let id = PathId::parse("/a");
    assert_eq!(
        store.app_versions(&id).unwrap(),
        vec![Timestamp(2000), Timestamp(1000)]
    );
    assert_eq!(
        store
            .app_version(&id, Timestamp(1000))
            .unwrap()
            .unwrap()
            .version,
        Timestamp(1000)
    );
    assert!(store.app_version(&id, Timestamp(3)).unwrap().is_none());
}

#[test]
fn versions_are_bounded_and_deletion_is_complete() {
    let store = Store::open_in_memory().unwrap();
    let id = PathId::parse("/a");
    for v in 0..(MAX_VERSIONS as i64 + 10) {
        store
            .write(|tx| tx.put_app(&app("/a", 1_000_000 + v)))
            .unwrap();
    }
    let versions = store.app_versions(&id).unwrap();
    assert_eq!(versions.len(), MAX_VERSIONS);
    assert_eq!(versions[0], Timestamp(1_000_000 + MAX_VERSIONS as i64 + 9));
    store.write(|tx| tx.delete_app(&id)).unwrap();
    assert!(store.load().unwrap().apps.is_empty());
    assert!(store.app_versions(&id).unwrap().is_empty());
}

#[test]
fn finished_deployments_move_to_history() {
    let store = Store::open_in_memory().unwrap();
    store
        .write(|tx| tx.put_deployment("d1", 1, &json!({"state": "running"})))
        .unwrap();
    store
        .write(|tx| tx.finish_deployment("d1", 2, &json!({"state": "success"})))
        .unwrap();
    assert!(store.load().unwrap().deployments.is_empty());
    assert_eq!(
        store.finished_deployment("d1").unwrap(),
        Some(json!({"state": "success"}))
    );
    assert_eq!(store.deployment_history(10).unwrap().len(), 1);
}

#[test]
fn failed_transaction_writes_nothing() {
    let store = Store::open_in_memory().unwrap();
    let r: Result<()> = store.write(|tx| {
        tx.put_app(&app("/a", 1))?;
        Err(StoreError::Poisoned)
    });
    assert!(r.is_err());
    assert!(store.load().unwrap().apps.is_empty());
}

#[test]
fn refuses_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
    }
    assert!(matches!(
        Store::open(&path),
        Err(StoreError::TooNew { found: 99, .. })
    ));
}

#[test]
fn audit_log_is_append_only() {
    let store = Store::open_in_memory().unwrap();
    let row = AuditRow {
        seq: 0,
        at: 5,
        user: "alice".into(),
        action: "PUT /v2/apps/web".into(),
        target: "app:/web".into(),
        app: Some("/web".into()),
        source: "127.0.0.1".into(),
        status: 200,
        outcome: "allowed".into(),
        detail: None,
    };
    let seq = store.append_audit(&row).unwrap();
    store
        .append_audit(&AuditRow {
            user: "bob".into(),
            app: None,
            at: 6,
            ..row.clone()
        })
        .unwrap();
    let conn = store.conn().unwrap();
    assert!(
        conn.execute("UPDATE audit SET user = 'mallory'", [])
            .is_err()
    );
    assert!(conn.execute("DELETE FROM audit", []).is_err());
    drop(conn);
    let all = store
        .audit(&AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        all.iter().map(|r| r.user.as_str()).collect::<Vec<_>>(),
        ["bob", "alice"],
        "newest first"
    );
    let alice = store
        .audit(&AuditQuery {
            user: Some("alice".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(alice.len(), 1);
    assert_eq!(alice[0].seq, seq);
    let web = store
        .audit(&AuditQuery {
            app: Some("/web".into()),
            since: Some(5),
            until: Some(5),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(web.len(), 1);
}

#[test]
fn tokens_are_found_by_hash_and_revoked_with_their_user() {
    let store = Store::open_in_memory().unwrap();
    store
        .put_user(&UserRow {
            name: "alice".into(),
            password_hash: None,
            role: "developer".into(),
            created_at: 1,
            disabled: false,
        })
        .unwrap();
    let t = TokenRow {
        id: "t1".into(),
        user: "alice".into(),
        name: "ci".into(),
        created_at: 1,
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
    };
    store.insert_token(&t, "h1").unwrap();
    let (found, user) = store.token_by_hash("h1").unwrap().unwrap();
    assert_eq!(found, t);
    assert_eq!(user.unwrap().role, "developer");
    assert!(store.token_by_hash("h2").unwrap().is_none());
    assert!(store.delete_user("alice", 9).unwrap());
    let (found, user) = store.token_by_hash("h1").unwrap().unwrap();
    assert_eq!(found.revoked_at, Some(9));
    assert!(user.is_none());
    assert!(!store.revoke_token("t1", 10).unwrap(), "already revoked");
}

#[test]
fn secrets_keep_only_sealed_bytes() {
    let store = Store::open_in_memory().unwrap();
    store
        .put_secret(
            "db",
            b"sealed-1",
            1,
            "admin",
            Some(r#"{"environments":["qa"]}"#),
        )
        .unwrap();
    store.put_secret("db", b"sealed-2", 2, "ops", None).unwrap();
    assert_eq!(
        store.secret_scope("db").unwrap(),
        Some(Some(r#"{"environments":["qa"]}"#.to_string())),
        "a new value keeps the scope"
    );
    assert_eq!(store.secret_scope("nope").unwrap(), None);
    assert_eq!(store.sealed_secret("db").unwrap().unwrap(), b"sealed-2");
    let meta = store.secrets().unwrap();
    assert_eq!(meta.len(), 1);
    assert_eq!(
        (
            meta[0].created_at,
            meta[0].updated_at,
            meta[0].updated_by.as_str()
        ),
        (1, 2, "ops")
    );
    assert!(store.delete_secret("db").unwrap());
    assert!(store.sealed_secret("db").unwrap().is_none());
}

fn run(id: &str, pipeline: &str, at: i64) -> crate::RunRow {
    crate::RunRow {
        id: id.into(),
        pipeline: pipeline.into(),
        number: 0,
        status: crate::RunStatus::Queued,
        event: "push".into(),
        triggered_by: "webhook".into(),
        branch: "dev".into(),
        sha: "abc".into(),
        params: "{}".into(),
        reason: None,
        created_at: at,
        started_at: None,
        finished_at: None,
    }
}

#[test]
fn runs_are_numbered_per_pipeline_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let s = Store::open(&path).unwrap();
        s.put_pipeline("orders", r#"{"repo":"/r"}"#, 1).unwrap();
        s.put_pipeline("orders", r#"{"repo":"/r2"}"#, 2).unwrap();
        assert_eq!(s.create_run(&run("r1", "orders", 10)).unwrap(), 1);
        assert_eq!(s.create_run(&run("r2", "orders", 11)).unwrap(), 2);
        assert_eq!(s.create_run(&run("r3", "billing", 12)).unwrap(), 1);
        assert!(
            s.set_run_status("r1", crate::RunStatus::Running, None, Some(20), None)
                .unwrap()
        );
        assert!(
            s.set_run_status(
                "r2",
                crate::RunStatus::Failed,
                Some("build failed"),
                Some(21),
                Some(30)
            )
            .unwrap()
        );
        assert!(
            !s.set_run_status("nope", crate::RunStatus::Failed, None, None, None)
                .unwrap()
        );
    }
    let s = Store::open(&path).unwrap();
    let p = s.pipelines().unwrap();
    assert_eq!(
        (
            p[0].name.as_str(),
            p[0].source.as_str(),
            p[0].created_at,
            p[0].updated_at
        ),
        ("orders", r#"{"repo":"/r2"}"#, 1, 2)
    );
    let ids: Vec<String> = s
        .runs(Some("orders"), 10)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["r2", "r1"], "newest first");
    assert_eq!(s.runs(None, 2).unwrap().len(), 2);
    let r2 = s.run("r2").unwrap().unwrap();
    assert_eq!(
        (
            r2.number,
            r2.status.as_str(),
            r2.reason.as_deref(),
            r2.finished_at
        ),
        (2, "failed", Some("build failed"), Some(30))
    );
    let unfinished: Vec<String> = s
        .unfinished_runs()
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        unfinished,
        ["r1", "r3"],
        "running and queued runs, to resume after a restart"
    );
}

#[test]
fn steps_keep_their_first_start_and_logs_are_paged_and_bounded() {
    let s = Store::open_in_memory().unwrap();
    s.create_run(&run("r1", "p", 1)).unwrap();
    let mut step = crate::StepRow {
        name: "build".into(),
        status: crate::StepStatus::Running,
        attempts: 1,
        outputs: "{}".into(),
        started_at: Some(5),
        ..Default::default()
    };
    s.put_step("r1", &step).unwrap();
    step.status = crate::StepStatus::Succeeded;
    step.attempts = 2;
    step.started_at = Some(9);
    step.finished_at = Some(12);
    step.outputs = r#"{"digest":"sha256:0"}"#.into();
    s.put_step("r1", &step).unwrap();
    let steps = s.steps("r1").unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(
        (steps[0].started_at, steps[0].finished_at, steps[0].attempts),
        (Some(5), Some(12), 2)
    );
    assert_eq!(steps[0].outputs, r#"{"digest":"sha256:0"}"#);

    let lines: Vec<(i64, &str, &str)> = (0..8)
        .map(|i| {
            (
                i,
                "stdout",
                ["a", "b", "c", "d", "e", "f", "g", "h"][i as usize],
            )
        })
        .collect();
    assert_eq!(s.append_logs("r1", "build", &lines[..5], 100).unwrap(), 5);
    assert_eq!(s.append_logs("r1", "build", &lines[5..], 6).unwrap(), 8);
    let all = s.logs("r1", "build", 0, 100).unwrap();
    let text: Vec<&str> = all.iter().map(|l| l.line.as_str()).collect();
    assert_eq!(
        text,
        ["c", "d", "e", "f", "g", "h"],
        "only the last 6 lines are kept"
    );
    assert_eq!(all[0].seq, 3, "sequence numbers stay stable");
    let page = s.logs("r1", "build", 4, 2).unwrap();
    assert_eq!(page.iter().map(|l| l.seq).collect::<Vec<_>>(), [5, 6]);
    assert!(s.logs("r1", "other", 0, 10).unwrap().is_empty());
}

/// Whether a task row is in the database file, as another connection sees it: committed.
fn committed(path: &std::path::Path, id: &str) -> bool {
    let c = rusqlite::Connection::open(path).unwrap();
    c.query_row("SELECT count(*) FROM tasks WHERE id = ?1", [id], |r| {
        r.get::<_, i64>(0)
    })
    .unwrap()
        == 1
}

fn task(tx: &Tx<'_>, id: &str) -> Result<()> {
    tx.put_task(id, &PathId::parse("/a"), &json!({"id": id}))
}

/// A write of task `id` that holds the connection for `hold_ms` on another thread; returns
/// once it has it (50 ms later), so that what the caller does next queues behind it.
fn holding_write(
    store: &std::sync::Arc<Store>,
    id: &'static str,
    hold_ms: u64,
) -> std::thread::JoinHandle<Result<()>> {
    let store = store.clone();
    let handle = std::thread::spawn(move || {
        store.write(|tx| {
            task(tx, id)?;
            std::thread::sleep(Duration::from_millis(hold_ms));
            Ok(())
        })
    });
    std::thread::sleep(Duration::from_millis(50));
    handle
}

#[test]
fn writes_that_meet_share_one_commit_and_return_only_once_it_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = std::sync::Arc::new(Store::open(&path).unwrap());
    let before = store.commits();
    // The next write queues for the connection meanwhile.
    let slow = holding_write(&store, "first", 300);
    // A write that fails, in the same batch: only its own change goes.
    let failed: Result<()> = store.write(|tx| {
        task(tx, "failed")?;
        Err(StoreError::Poisoned)
    });
    assert!(failed.is_err());
    store.write(|tx| task(tx, "second")).unwrap();
    assert!(committed(&path, "second"), "durable when write returns");
    slow.join().unwrap().unwrap();
    assert!(committed(&path, "first"), "durable when write returns");
    assert!(!committed(&path, "failed"));
    // "first" and "failed" met; "second" may have come after the batch was committed.
    let commits = store.commits() - before;
    assert!((1..=2).contains(&commits), "{commits} commits");
}

#[test]
fn a_read_commits_the_open_batch_first_and_many_writers_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = std::sync::Arc::new(Store::open(&path).unwrap());
    let slow = holding_write(&store, "held", 300);
    // The read waits for the connection; the writer leaves its batch to it, and it
    // commits the batch before it reads: it sees the row as committed.
    let snap = store.load().unwrap();
    assert!(snap.tasks.iter().any(|(id, _)| id == "held"), "{snap:?}");
    assert!(committed(&path, "held"));
    slow.join().unwrap().unwrap();

    let before = store.commits();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (store, path) = (store.clone(), path.clone());
            std::thread::spawn(move || {
                for i in 0..50 {
                    let id = format!("t{t}-{i}");
                    store.write(|tx| task(tx, &id)).unwrap();
                    assert!(committed(&path, &id), "{id} not committed on return");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(store.load().unwrap().tasks.len(), 8 * 50 + 1);
    eprintln!("{} commits for 400 writes", store.commits() - before);
}

#[test]
fn a_batch_is_committed_after_at_most_max_batch_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = std::sync::Arc::new(Store::open(&path).unwrap());
    let before = store.commits();
    // Everyone below queues for the connection meanwhile.
    let first = holding_write(&store, "first", 500);
    let n = 2 * MAX_BATCH;
    let rest: Vec<_> = (0..n)
        .map(|i| {
            let store = store.clone();
            std::thread::spawn(move || store.write(|tx| task(tx, &format!("w{i}"))))
        })
        .collect();
    first.join().unwrap().unwrap();
    for t in rest {
        t.join().unwrap().unwrap();
    }
    assert_eq!(store.load().unwrap().tasks.len(), n + 1);
    // 2 × MAX_BATCH + 1 writes that all met cannot fit in fewer than three batches.
    let commits = store.commits() - before;
    assert!(commits >= 3, "{commits} commits for {} writes", n + 1);
}
