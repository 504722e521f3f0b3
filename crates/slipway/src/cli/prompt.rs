//! Reading passwords and secret values: from standard input, or typed at a prompt on
//! stderr with terminal echo switched off (`stty -echo` on /dev/tty; when that fails the
//! input stays visible). Nothing read here is ever printed.

use anyhow::Context;
use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use super::error::{Exit, coded};

/// Whether this process switched terminal echo off (and must switch it back on).
static ECHO_OFF: AtomicBool = AtomicBool::new(false);

/// Drops one trailing newline (`\n` or `\r\n`), as `echo` and here-strings add one.
pub(crate) fn strip_newline(s: &str) -> &str {
    let s = s.strip_suffix('\n').unwrap_or(s);
    s.strip_suffix('\r').unwrap_or(s)
}

/// Whether standard input is a terminal.
pub(crate) fn stdin_is_terminal() -> bool {
    io::stdin().is_terminal()
}

/// All of standard input as UTF-8 without its trailing newline; `what` names it in errors.
pub(crate) async fn read_stdin(what: &str) -> anyhow::Result<String> {
    let bytes = tokio::task::spawn_blocking(|| {
        let mut buf = Vec::new();
        io::stdin().lock().read_to_end(&mut buf).map(|_| buf)
    })
    .await
    .context("cannot read standard input")?
    .context("cannot read standard input")?;
    let text = String::from_utf8(bytes)
        .map_err(|_| coded(Exit::Invalid, format!("the {what} is not valid UTF-8")))?;
    non_empty(strip_newline(&text), what)
}

/// Prints `prompt` on stderr and reads one visible line from standard input.
pub(crate) async fn ask(prompt: &str) -> anyhow::Result<String> {
    read_line(prompt.to_string(), false).await
}

/// Prints `prompt` on stderr and reads one line with echo off when standard input is a
/// terminal; the answer must not be empty.
pub(crate) async fn ask_hidden(prompt: &str, what: &str) -> anyhow::Result<String> {
    let line = read_line(prompt.to_string(), true).await?;
    non_empty(&line, what)
}

/// Makes Ctrl-C restore terminal echo before exiting with 130. Call once per command that
/// prompts; it stays in force until the process ends.
pub(crate) fn restore_echo_on_interrupt() {
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            if ECHO_OFF.swap(false, Ordering::SeqCst) {
                stty("echo");
                eprintln!();
            }
            std::process::exit(130);
        }
    });
}

/// This machine's host name, for naming the token `slipway login` creates.
pub(crate) fn hostname() -> String {
    let from_file = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    from_file
        .or_else(|| {
            let out = Command::new("hostname")
                .stderr(Stdio::null())
                .output()
                .ok()?;
            let name = String::from_utf8(out.stdout).ok()?.trim().to_string();
            (out.status.success() && !name.is_empty()).then_some(name)
        })
        .unwrap_or_else(|| "unknown-host".to_string())
}

fn non_empty(s: &str, what: &str) -> anyhow::Result<String> {
    if s.is_empty() {
        return Err(coded(Exit::Invalid, format!("the {what} is empty")));
    }
    Ok(s.to_string())
}

/// Runs `stty ARG` on the controlling terminal; whether it worked.
fn stty(arg: &str) -> bool {
    let Ok(tty) = std::fs::File::open("/dev/tty") else {
        return false;
    };
    Command::new("stty")
        .arg(arg)
        .stdin(tty)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Switches echo back on when dropped (also on errors).
struct EchoGuard;

impl Drop for EchoGuard {
    fn drop(&mut self) {
        if ECHO_OFF.swap(false, Ordering::SeqCst) {
            stty("echo");
            // The user's Enter was not echoed either.
            eprintln!();
        }
    }
}

async fn read_line(prompt: String, hidden: bool) -> anyhow::Result<String> {
    let question = prompt.trim().trim_end_matches(':').to_string();
    tokio::task::spawn_blocking(move || {
        let _guard = EchoGuard;
        if hidden && stdin_is_terminal() {
            if stty("-echo") {
                ECHO_OFF.store(true, Ordering::SeqCst);
            } else {
                eprintln!("warning: cannot switch off terminal echo: your input will be visible");
            }
        }
        let mut err = io::stderr().lock();
        let _ = write!(err, "{prompt}").and_then(|()| err.flush());
        drop(err);
        let mut line = String::new();
        let n = io::stdin().lock().read_line(&mut line)?;
        if !stdin_is_terminal() {
            // Nothing was echoed: end the prompt's line.
            eprintln!();
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "standard input ended",
            ));
        }
        Ok(strip_newline(&line).to_string())
    })
    .await
    .context("cannot read the answer")?
    .map_err(|e| coded(Exit::Invalid, format!("no answer to {question:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_trailing_newline_is_dropped() {
        assert_eq!(strip_newline("pw\n"), "pw");
        assert_eq!(strip_newline("pw\r\n"), "pw");
        assert_eq!(strip_newline("pw\n\n"), "pw\n");
        assert_eq!(strip_newline(" pw "), " pw ");
        assert_eq!(strip_newline(""), "");
    }

    #[test]
    fn empty_answers_are_invalid() {
        let err = non_empty("", "password").err();
        let Some(err) = err else { panic!("accepted") };
        assert_eq!(super::super::error::exit_code(&err), Exit::Invalid);
        assert_eq!(err.to_string(), "the password is empty");
        assert_eq!(non_empty("x", "password").ok().as_deref(), Some("x"));
    }

    #[test]
    fn hostname_is_never_empty() {
        assert!(!hostname().is_empty());
    }
}
