//! Reading small kernel files into one reusable buffer, counting what could not be read.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use crate::parse;

/// Files larger than this are treated as garbage (cgroup and proc files are a few KiB).
const MAX_FILE: usize = 16 << 20;

/// Counters of a collector's own work, cumulative since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CollectStats {
    /// Targets (tasks, or host rounds) collected.
    pub targets: u64,
    /// Files read successfully.
    pub files_read: u64,
    /// Files that did not exist (their series are absent for that round).
    pub missing: u64,
    /// Files that existed but could not be opened or read (their series are absent for that round).
    pub io_errors: u64,
    /// Files whose content could not be parsed where a single value was expected.
    pub parse_errors: u64,
}

/// One buffer and one path reused for every read.
#[derive(Debug)]
pub(crate) struct FileReader {
    buf: Vec<u8>,
    len: usize,
    path: PathBuf,
    pub(crate) stats: CollectStats,
}

impl FileReader {
    pub(crate) fn new() -> FileReader {
        FileReader {
            buf: vec![0; 8192],
            len: 0,
            path: PathBuf::with_capacity(256),
            stats: CollectStats::default(),
        }
    }

    /// The content of the last successful read.
    pub(crate) fn data(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Reads `dir/file` (reading until end of file: seq_file reads return one page at a time);
    /// false, and counted, if it is missing or unreadable.
    pub(crate) fn read(&mut self, dir: &Path, file: &str) -> bool {
        self.path.clear();
        self.path.push(dir);
        self.path.push(file);
        self.len = 0;
        let mut f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) => {
                self.count_error(&e);
                return false;
            }
        };
        loop {
            if self.len == self.buf.len() {
                if self.buf.len() >= MAX_FILE {
                    self.stats.io_errors += 1;
                    self.len = 0;
                    return false;
                }
                self.buf.resize(self.buf.len() * 2, 0);
            }
            match f.read(&mut self.buf[self.len..]) {
                Ok(0) => break,
                Ok(n) => self.len += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.count_error(&e);
                    self.len = 0;
                    return false;
                }
            }
        }
        self.stats.files_read += 1;
        true
    }

    /// Counts an I/O error: not found separately from the rest.
    pub(crate) fn count_error(&mut self, e: &std::io::Error) {
        if e.kind() == ErrorKind::NotFound {
            self.stats.missing += 1;
        } else {
            self.stats.io_errors += 1;
        }
    }

    /// Reads a file holding one unsigned integer.
    pub(crate) fn read_u64(&mut self, dir: &Path, file: &str) -> Option<u64> {
        if !self.read(dir, file) {
            return None;
        }
        let v = parse::parse_u64(self.data());
        if v.is_none() {
            self.stats.parse_errors += 1;
        }
        v
    }

    /// Reads a file holding one signed integer.
    pub(crate) fn read_i64(&mut self, dir: &Path, file: &str) -> Option<i64> {
        if !self.read(dir, file) {
            return None;
        }
        let v = parse::parse_i64(self.data());
        if v.is_none() {
            self.stats.parse_errors += 1;
        }
        v
    }
}

/// Clock ticks per second for `/proc` times (`USER_HZ`, 100 on almost every Linux).
pub(crate) fn clock_ticks() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|&t| t > 0)
        .map_or(100.0, |t| t as f64)
}
