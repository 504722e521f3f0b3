//! Task log files in the sandbox: copytruncate rotation and paged reads.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Largest chunk [`read_log`] returns, whatever `limit` asks for.
pub const MAX_READ: u64 = 16 * 1024 * 1024;

/// One of the two task output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LogStream {
    /// `<sandbox>/stdout`.
    Stdout,
    /// `<sandbox>/stderr`.
    Stderr,
}

impl LogStream {
    /// File name of the current log inside the sandbox (`stdout` or `stderr`).
    pub fn file_name(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }

    /// Path of the current log file.
    pub fn path(self, sandbox: &Path) -> PathBuf {
        sandbox.join(self.file_name())
    }

    /// Path of the previous chunk (`stdout.1` / `stderr.1`) kept by rotation.
    pub fn rotated_path(self, sandbox: &Path) -> PathBuf {
        sandbox.join(format!("{}.1", self.file_name()))
    }
}

/// A slice of a log file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LogChunk {
    /// The bytes read.
    pub data: Vec<u8>,
    /// Offset in the file of the first byte of `data`.
    pub offset: u64,
    /// Offset to ask for next time (`offset + data.len()`).
    pub next_offset: u64,
    /// Current size of the file.
    pub size: u64,
}

/// Opens a log for appending, creating it with mode 0644 if needed.
pub(crate) fn open_append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(path)
}

/// Rotates one stream if it is larger than `max_bytes` (copytruncate).
///
/// The last `max_bytes` bytes are copied to `<name>.1` (atomically replacing it), then the
/// live file is truncated to 0. The task writes with `O_APPEND`, so its next write lands at
/// offset 0. Bytes written between the copy and the truncation are lost (inherent to
/// copytruncate; the window is a single `ftruncate`).
pub(crate) fn rotate_stream(sandbox: &Path, stream: LogStream, max_bytes: u64) -> io::Result<()> {
    let path = stream.path(sandbox);
    let mut file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    if len <= max_bytes {
        return Ok(());
    }
    let keep = max_bytes.max(1).min(len);
    let rotated = stream.rotated_path(sandbox);
    let tmp = sandbox.join(format!(".{}.1.tmp", stream.file_name()));
    {
        let mut out = File::create(&tmp)?;
        file.seek(SeekFrom::Start(len - keep))?;
        io::copy(&mut (&mut file).take(keep), &mut out)?;
    }
    fs::rename(&tmp, &rotated)?;
    file.set_len(0)
}

/// Reads from the current log file of `stream`.
///
/// `offset: None` returns the last `limit` bytes (tail). An offset past the end of the file
/// (e.g. after a rotation truncated it) returns no data with `offset == next_offset == size`,
/// so a follower can detect rotation by `size < requested offset`. A missing file reads as
/// empty. `limit` is capped at [`MAX_READ`].
pub(crate) fn read_log(
    sandbox: &Path,
    stream: LogStream,
    offset: Option<u64>,
    limit: u64,
) -> io::Result<LogChunk> {
    let mut file = match File::open(stream.path(sandbox)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LogChunk::default()),
        Err(e) => return Err(e),
    };
    let size = file.metadata()?.len();
    let limit = limit.min(MAX_READ);
    let start = match offset {
        None => size.saturating_sub(limit),
        Some(o) => o.min(size),
    };
    file.seek(SeekFrom::Start(start))?;
    let mut data = Vec::new();
    file.take(limit).read_to_end(&mut data)?;
    let next_offset = start + data.len() as u64;
    Ok(LogChunk {
        data,
        offset: start,
        next_offset,
        size: size.max(next_offset),
    })
}
