//! Log tests: copytruncate rotation keeps files bounded; offset and tail paging.

mod common;

use common::{launcher, read, shell_spec, wait_for_async};
use launcher::{Launcher, LogStream, Signal, wait_exit};

#[test]
fn rotation_bounds_files_and_keeps_last_chunk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = launcher("rotate-file");
    let content: Vec<u8> = (0..2500u32).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(dir.path().join("stdout"), &content).expect("write");
    std::fs::write(dir.path().join("stderr"), b"small").expect("write");
    l.rotate_logs(dir.path()).expect("rotate");
    let stdout = std::fs::read(dir.path().join("stdout")).expect("stdout");
    let rotated = std::fs::read(dir.path().join("stdout.1")).expect("stdout.1");
    assert!(stdout.is_empty());
    assert_eq!(rotated, content[1500..]);
    assert_eq!(read(&dir.path().join("stderr")), "small");
    assert!(!dir.path().join("stderr.1").exists());
    // Rotating an empty sandbox is fine.
    let empty = tempfile::tempdir().expect("tempdir");
    l.rotate_logs(empty.path()).expect("rotate empty");
}

#[tokio::test]
async fn live_task_keeps_appending_from_zero_after_rotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = launcher("rotate-live");
    let spec = shell_spec(
        "chatty",
        "i=0; while :; do i=$((i+1)); echo line-$i; sleep 0.01; done",
        dir.path(),
    );
    let mut launched = l.launch(&spec).await.expect("launch");
    let sandbox = launched.sandbox.clone();
    let size = |s: &std::path::Path| std::fs::metadata(s.join("stdout")).map_or(0, |m| m.len());
    for round in 0..3 {
        assert!(
            wait_for_async(|| size(&sandbox) > 1000).await,
            "round {round}"
        );
        l.rotate_logs(&sandbox).expect("rotate");
        let rotated = std::fs::read(sandbox.join("stdout.1")).expect("stdout.1");
        assert!(rotated.len() <= 1000);
        assert!(rotated.ends_with(b"\n"));
        // Let the task write again, then check it wrote at offset 0 (O_APPEND), not after a hole.
        assert!(wait_for_async(|| size(&sandbox) > 0).await);
        let current = std::fs::read(sandbox.join("stdout")).expect("stdout");
        assert!(
            !current.contains(&0),
            "sparse hole: task did not write with O_APPEND"
        );
    }
    l.signal(launched.identity, Signal::SIGKILL).expect("kill");
    wait_exit(&mut launched.child).await;
}

#[test]
fn read_log_pages_by_offset_and_tails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let content: Vec<u8> = (0..100u8).collect();
    std::fs::write(dir.path().join("stdout"), &content).expect("write");

    let mut collected = Vec::new();
    let mut offset = 0;
    loop {
        let chunk =
            Launcher::read_log(dir.path(), LogStream::Stdout, Some(offset), 30).expect("read");
        assert_eq!(chunk.offset, offset);
        assert_eq!(chunk.size, 100);
        assert!(chunk.data.len() <= 30);
        assert_eq!(chunk.next_offset, offset + chunk.data.len() as u64);
        if chunk.data.is_empty() {
            break;
        }
        collected.extend_from_slice(&chunk.data);
        offset = chunk.next_offset;
    }
    assert_eq!(collected, content);

    let tail = Launcher::read_log(dir.path(), LogStream::Stdout, None, 15).expect("tail");
    assert_eq!(tail.data, content[85..]);
    assert_eq!((tail.offset, tail.next_offset), (85, 100));
    let all = Launcher::read_log(dir.path(), LogStream::Stdout, None, 1000).expect("tail");
    assert_eq!((all.offset, all.data.len()), (0, 100));

    let past = Launcher::read_log(dir.path(), LogStream::Stdout, Some(500), 10).expect("past");
    assert!(past.data.is_empty());
    assert_eq!((past.offset, past.next_offset, past.size), (100, 100, 100));

    let missing = Launcher::read_log(dir.path(), LogStream::Stderr, None, 10).expect("missing");
    assert_eq!(missing.size, 0);
    assert!(missing.data.is_empty());
}
