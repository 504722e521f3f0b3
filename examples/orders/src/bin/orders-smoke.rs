//! The example's automated tests against a running deployment (the pipeline runs them in
//! a container against QA): `orders-smoke http://127.0.0.1:10101 qa`.
//! Exits 0 when every check passes, 1 with the failed checks otherwise.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn get(base: &str, path: &str) -> Result<(u16, String), String> {
    let addr = base
        .strip_prefix("http://")
        .ok_or_else(|| format!("{base}: only http:// URLs"))?
        .trim_end_matches('/');
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("GET {path}: no HTTP status in {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
}

/// A named check.
type Check<'a> = (&'static str, Box<dyn Fn() -> Result<(), String> + 'a>);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let base = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let profile = args.get(2).cloned().unwrap_or_else(|| "qa".into());
    let checks: Vec<Check<'_>> = vec![
        (
            "health",
            Box::new(|| match get(&base, "/health")? {
                (200, b) if b.contains("\"ok\"") => Ok(()),
                other => Err(format!("{other:?}")),
            }),
        ),
        (
            "profile",
            Box::new(|| {
                let (status, body) = get(&base, "/")?;
                let want = format!("\"profile\":\"{profile}\"");
                if status == 200 && body.contains(&want) {
                    Ok(())
                } else {
                    Err(format!("{status} {body} (wanted {want})"))
                }
            }),
        ),
        (
            "bulk discount",
            Box::new(|| {
                let (status, body) = get(&base, "/orders")?;
                if status == 200 && body.contains("\"total\":\"248.43\"") {
                    Ok(())
                } else {
                    Err(format!("{status} {body}"))
                }
            }),
        ),
    ];
    let mut failed = 0;
    for (name, check) in &checks {
        match check() {
            Ok(()) => println!("ok   {name}"),
            Err(e) => {
                failed += 1;
                println!("FAIL {name}: {e}");
            }
        }
    }
    println!("{} checks, {failed} failed, against {base}", checks.len());
    std::process::exit(i32::from(failed > 0));
}
