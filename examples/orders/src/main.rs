//! The example service: `GET /` (who am I), `GET /health`, `GET /orders`.
//!
//! Listens on `$ORDERS_HOST:$ORDERS_PORT` (the image sets 0.0.0.0:8080, its container
//! port), else on the task's `$HOST:$PORT0` (a process app), else 127.0.0.1:8080. The
//! profile comes from `--profile=NAME` (or the seed's `--spring.profiles.active=NAME`), the
//! version from the build (`ORDERS_VERSION`, the commit the pipeline built).
//!
//! SIGTERM (and SIGINT) shut it down cleanly: it stops accepting, finishes the requests in
//! flight and exits 0. An orchestrator stops a task with SIGTERM and sends SIGKILL only
//! after a grace period; in a container the service is PID 1, which the kernel does not
//! kill for a signal it has no handler for, so without this every stop waited the whole
//! grace period.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How often the accept loop looks for a shutdown request.
const POLL: Duration = Duration::from_millis(20);
/// The longest wait for requests in flight after SIGTERM.
const DRAIN: Duration = Duration::from_secs(10);

const VERSION: &str = match option_env!("ORDERS_VERSION") {
    Some(v) => v,
    None => "dev",
};

fn main() {
    let profile = std::env::args()
        .skip(1)
        .find_map(|a| {
            a.strip_prefix("--profile=")
                .or_else(|| a.strip_prefix("--spring.profiles.active="))
                .map(str::to_string)
        })
        .unwrap_or_else(|| "default".into());
    let var = |names: &[&str], default: &str| {
        names
            .iter()
            .find_map(|n| std::env::var(n).ok())
            .unwrap_or_else(|| default.to_string())
    };
    let host = var(&["ORDERS_HOST", "HOST"], "127.0.0.1");
    let port = var(&["ORDERS_PORT", "PORT0", "PORT"], "8080");
    let listener = match TcpListener::bind(format!("{host}:{port}")) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("orders: cannot listen on {host}:{port}: {e}");
            std::process::exit(1);
        }
    };
    signals::install();
    // Non-blocking, so the loop sees a shutdown request between connections.
    if let Err(e) = listener.set_nonblocking(true) {
        eprintln!("orders: cannot set up the listener: {e}");
        std::process::exit(1);
    }
    println!("orders {VERSION} ({profile}) listening on {host}:{port}");
    let in_flight = Arc::new(AtomicUsize::new(0));
    while !signals::stop_requested() {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let profile = profile.clone();
                let in_flight = Arc::clone(&in_flight);
                std::thread::spawn(move || serve(stream, &profile, &in_flight));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("orders: accept failed: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
    // Stop accepting at once, then let the requests in flight finish.
    drop(listener);
    println!("orders: shutting down, finishing requests in flight");
    let deadline = Instant::now() + DRAIN;
    while in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(POLL);
    }
    let left = in_flight.load(Ordering::SeqCst);
    if left > 0 {
        eprintln!("orders: {left} requests still in flight after {DRAIN:?}; exiting anyway");
    }
    println!("orders: stopped");
    std::process::exit(0);
}

/// Counts one request as in flight while it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn start(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Answers the requests of one connection (keep-alive), until it closes. A request counts
/// as in flight from its first line until its response is written; after a shutdown
/// request, responses say `Connection: close`.
fn serve(stream: TcpStream, profile: &str, in_flight: &AtomicUsize) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let _request = InFlight::start(in_flight);
        let mut close = false;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let h = header.trim_end().to_ascii_lowercase();
            if h.is_empty() {
                break;
            }
            if h == "connection: close" {
                close = true;
            }
        }
        close |= signals::stop_requested();
        let path = request_line.split_whitespace().nth(1).unwrap_or("/");
        let (status, body) = match path {
            "/" => (
                "200 OK",
                format!(
                    "{{\"service\":\"orders\",\"version\":\"{VERSION}\",\"profile\":\"{profile}\"}}"
                ),
            ),
            "/health" => ("200 OK", "{\"status\":\"ok\"}".to_string()),
            "/orders" => ("200 OK", orders::orders_json(&orders::sample_orders())),
            _ => ("404 Not Found", "{\"error\":\"not found\"}".to_string()),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        if out.write_all(response.as_bytes()).is_err() || close {
            return;
        }
    }
}

/// SIGTERM and SIGINT handling with the C library's `signal` (std has no API for it and the
/// example takes no dependencies): the handler only sets a flag, which is async-signal-safe.
mod signals {
    use std::sync::atomic::{AtomicBool, Ordering};

    static STOP: AtomicBool = AtomicBool::new(false);

    const SIGINT: i32 = 2;
    const SIGTERM: i32 = 15;

    unsafe extern "C" {
        fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    }

    extern "C" fn on_signal(_signum: i32) {
        STOP.store(true, Ordering::SeqCst);
    }

    /// Installs the handler for SIGTERM and SIGINT.
    pub fn install() {
        for signum in [SIGTERM, SIGINT] {
            // SAFETY: `signal` is the C library's; the handler is an `extern "C"` function
            // that only stores to an atomic, which is async-signal-safe.
            unsafe {
                signal(signum, on_signal);
            }
        }
    }

    /// True once SIGTERM or SIGINT arrived.
    pub fn stop_requested() -> bool {
        STOP.load(Ordering::SeqCst)
    }
}
