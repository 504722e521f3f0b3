//! The example service: `GET /` (who am I), `GET /health`, `GET /orders`.
//!
//! Listens on `$ORDERS_HOST:$ORDERS_PORT` (the image sets 0.0.0.0:8080, its container
//! port), else on the task's `$HOST:$PORT0` (a process app), else 127.0.0.1:8080. The
//! profile comes from `--profile=NAME` (or the seed's `--spring.profiles.active=NAME`), the
//! version from the build (`ORDERS_VERSION`, the commit the pipeline built).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

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
    println!("orders {VERSION} ({profile}) listening on {host}:{port}");
    for stream in listener.incoming().flatten() {
        let profile = profile.clone();
        std::thread::spawn(move || serve(stream, &profile));
    }
}

/// Answers the requests of one connection (keep-alive), until it closes.
fn serve(stream: TcpStream, profile: &str) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
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
