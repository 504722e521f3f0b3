//! A tiny HTTP/1.1 server for Slipway's tests and demos, std only so it links statically
//! and runs `FROM scratch`.
//!
//! - `GET /`            → `version=<VERSION> task=<MESOS_TASK_ID> port=<port>`
//! - `GET /health`      → 200 `ok`, or 503 after `/health/fail` (until `/health/ok`)
//! - `GET /health/fail`, `/health/ok` → switch the health answer at run time
//! - `GET /burn?ms=N`   → burns one CPU for N ms (for autoscaler tests)
//! - `GET /sleep?ms=N`  → answers after N ms (for drain tests)
//! - anything else      → 404
//!
//! `slipway-testsrv --check URL` instead does one HTTP GET of `http://host:port/path` and
//! exits 0 on a 2xx/3xx answer, 1 otherwise: a HEALTHCHECK for images without curl.
//!
//! Port: the last `--port N`, else `$TESTSRV_PORT` (set by the test image), else `$PORT0`,
//! else 8080. Host: `--host`, else `$TESTSRV_HOST`, else 0.0.0.0 inside the test image (the
//! container's own network namespace) and 127.0.0.1 everywhere else. It runs until killed
//! (SIGTERM and SIGINT exit 0).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(url) = args
        .iter()
        .position(|a| a == "--check")
        .and_then(|i| args.get(i + 1))
    {
        std::process::exit(if check(url) { 0 } else { 1 });
    }
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    // The last --port wins, then the image's TESTSRV_PORT, then Marathon's PORT0.
    let port = args
        .iter()
        .rposition(|a| a == "--port")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .or_else(|| std::env::var("TESTSRV_PORT").ok())
        .or_else(|| std::env::var("PORT0").ok())
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(8080);
    // Loopback on the host; all of the container's own interfaces inside the test image
    // (which sets TESTSRV_PORT), where Docker publishes the port on the host's loopback.
    let host = flag("--host")
        .or_else(|| std::env::var("TESTSRV_HOST").ok())
        .unwrap_or_else(|| {
            if std::env::var_os("TESTSRV_PORT").is_some() {
                "0.0.0.0".into()
            } else {
                "127.0.0.1".into()
            }
        });
    let listener = match TcpListener::bind((host.as_str(), port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("slipway-testsrv: cannot listen on {host}:{port}: {e}");
            std::process::exit(1);
        }
    };
    let version = std::env::var("VERSION").unwrap_or_else(|_| "unset".into());
    let task = std::env::var("MESOS_TASK_ID").unwrap_or_default();
    println!("slipway-testsrv listening on {host}:{port} version={version}");
    exit_on_sigterm();
    let failing = Arc::new(AtomicBool::new(std::env::var("START_UNHEALTHY").is_ok()));
    for conn in listener.incoming().flatten() {
        let failing = failing.clone();
        let (version, task) = (version.clone(), task.clone());
        std::thread::spawn(move || serve(conn, &failing, &version, &task, port));
    }
}

/// Exits on SIGTERM/SIGINT. As PID 1 in a container a process without handlers ignores
/// SIGTERM, which would turn every stop into a SIGKILL after the grace period.
fn exit_on_sigterm() {
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            std::process::exit(0);
        });
    });
}

/// One GET with a 2 s budget; true on a 2xx or 3xx status.
fn check(url: &str) -> bool {
    use std::io::Read;
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (hostport, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let Ok(addr) = hostport.parse::<std::net::SocketAddr>() else {
        return false;
    };
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && matches!(head[9], b'2' | b'3')
}

fn serve(conn: TcpStream, failing: &AtomicBool, version: &str, task: &str, port: u16) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = conn.set_nodelay(true);
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut close = line.contains("HTTP/1.0");
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let lower = h.to_ascii_lowercase();
            if lower.starts_with("connection:") {
                close = lower.contains("close");
            }
            if h == "\r\n" || h == "\n" {
                break;
            }
        }
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let ms = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("ms="))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(100);
        let (status, body) = match path {
            "/" => (200, format!("version={version} task={task} port={port}\n")),
            "/health" | "/health_check" if failing.load(Ordering::SeqCst) => {
                (503, "failing\n".into())
            }
            "/health" | "/health_check" => (200, "ok\n".into()),
            "/health/fail" => {
                failing.store(true, Ordering::SeqCst);
                (200, "health now failing\n".into())
            }
            "/health/ok" => {
                failing.store(false, Ordering::SeqCst);
                (200, "health now ok\n".into())
            }
            "/burn" => {
                let end = Instant::now() + Duration::from_millis(ms);
                let mut x = 0u64;
                while Instant::now() < end {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                }
                (200, format!("burned {ms}ms {}\n", x % 2))
            }
            "/sleep" => {
                std::thread::sleep(Duration::from_millis(ms));
                (200, format!("slept {ms}ms\n"))
            }
            _ => (404, "not found\n".into()),
        };
        let reason = match status {
            200 => "OK",
            404 => "Not Found",
            _ => "Service Unavailable",
        };
        // One write: a head and a body in two small writes meet Nagle's algorithm and the
        // peer's delayed ACK, adding about 40 ms to every answer.
        let answer = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        if writer.write_all(answer.as_bytes()).is_err() || close {
            return;
        }
    }
}
