//! Reading small kernel files into one reusable buffer, counting what could not be read.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// A read shorter than this (and than asked for) is the end of the file. A seq_file read returns at most one
/// buffer of at least a page (4096 bytes), less the record that did not fit; records here are under 1 KiB.
const SHORT_READ: usize = 3072;

/// Rounds a missing file is remembered as missing before it is tried again.
const MISSING_RETRY: u64 = 16;

/// Files kept open by every [`FileCache`] of the process, against the collectors' budgets.
static OPEN_FILES: AtomicUsize = AtomicUsize::new(0);

/// The state of one cached file of a target.
#[derive(Debug, Default)]
enum Slot {
    /// Not opened yet.
    #[default]
    Unknown,
    /// Kept open; read again with `pread` at offset 0.
    Open(File),
    /// Did not exist; not tried again before round `retry_at`.
    Missing { retry_at: u64 },
}

/// The files of one target kept open between rounds (so a sample costs one `pread` per file instead of
/// open, read, read, close), and the files known to be missing.
#[derive(Debug, Default)]
pub(crate) struct FileCache {
    slots: Vec<Slot>,
    pub(crate) round: u64,
}

impl FileCache {
    /// Closes (and forgets) the file of `slot`, if any.
    pub(crate) fn close(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot) {
            if matches!(s, Slot::Open(_)) {
                OPEN_FILES.fetch_sub(1, Ordering::Relaxed);
            }
            *s = Slot::Unknown;
        }
    }

    /// Number of files this cache holds open.
    pub(crate) fn open_files(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s, Slot::Open(_)))
            .count()
    }
}

impl Drop for FileCache {
    fn drop(&mut self) {
        OPEN_FILES.fetch_sub(self.open_files(), Ordering::Relaxed);
    }
}

/// Files currently kept open by all collectors of the process.
pub(crate) fn open_files() -> usize {
    OPEN_FILES.load(Ordering::Relaxed)
}

/// Reads a whole file from offset 0 into `buf` (grown as needed); returns its length.
fn read_all_at(f: &File, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut len = 0;
    loop {
        if len == buf.len() {
            if buf.len() >= MAX_FILE {
                return Err(std::io::Error::other("file too large"));
            }
            buf.resize(buf.len() * 2, 0);
        }
        let want = buf.len() - len;
        match f.read_at(&mut buf[len..], len as u64) {
            Ok(0) => return Ok(len),
            Ok(n) => {
                len += n;
                if n < want && n < SHORT_READ {
                    return Ok(len);
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// One buffer and one path reused for every read, plus the cache of the target being collected.
#[derive(Debug)]
pub(crate) struct FileReader {
    buf: Vec<u8>,
    len: usize,
    path: PathBuf,
    pub(crate) stats: CollectStats,
    /// The cache of the target being collected (moved in and out around each target).
    pub(crate) cache: FileCache,
    /// How many files all caches together may keep open.
    pub(crate) budget: usize,
}

impl FileReader {
    pub(crate) fn new() -> FileReader {
        FileReader {
            buf: vec![0; 8192],
            len: 0,
            path: PathBuf::with_capacity(256),
            stats: CollectStats::default(),
            cache: FileCache::default(),
            budget: 0,
        }
    }

    /// The content of the last successful read.
    pub(crate) fn data(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Reads `dir/file` without caching; false, and counted, if it is missing or unreadable.
    pub(crate) fn read(&mut self, dir: &Path, file: &str) -> bool {
        self.read_slot(None, dir, file)
    }

    /// Reads `dir/file`, through the cache's `slot` if given; false, and counted, if it is missing or unreadable.
    pub(crate) fn read_slot(&mut self, slot: Option<usize>, dir: &Path, file: &str) -> bool {
        self.len = 0;
        if let Some(s) = slot {
            if self.cache.slots.len() <= s {
                self.cache.slots.resize_with(s + 1, Slot::default);
            }
            match &self.cache.slots[s] {
                Slot::Open(f) => match read_all_at(f, &mut self.buf) {
                    Ok(len) => {
                        self.len = len;
                        self.stats.files_read += 1;
                        return true;
                    }
                    // Typically ENODEV: the cgroup was removed (and maybe created again); open it afresh.
                    Err(_) => {
                        self.cache.slots[s] = Slot::Unknown;
                        OPEN_FILES.fetch_sub(1, Ordering::Relaxed);
                    }
                },
                Slot::Missing { retry_at } if self.cache.round < *retry_at => {
                    self.stats.missing += 1;
                    return false;
                }
                _ => {}
            }
        }
        self.path.clear();
        self.path.push(dir);
        self.path.push(file);
        let f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) => {
                if let Some(s) = slot
                    && e.kind() == ErrorKind::NotFound
                {
                    self.cache.slots[s] = Slot::Missing {
                        retry_at: self.cache.round + MISSING_RETRY,
                    };
                }
                self.count_error(&e);
                return false;
            }
        };
        match read_all_at(&f, &mut self.buf) {
            Ok(len) => self.len = len,
            Err(e) => {
                self.count_error(&e);
                return false;
            }
        }
        self.stats.files_read += 1;
        if let Some(s) = slot
            && OPEN_FILES.load(Ordering::Relaxed) < self.budget
        {
            OPEN_FILES.fetch_add(1, Ordering::Relaxed);
            self.cache.slots[s] = Slot::Open(f);
        }
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
    pub(crate) fn read_u64(&mut self, slot: Option<usize>, dir: &Path, file: &str) -> Option<u64> {
        if !self.read_slot(slot, dir, file) {
            return None;
        }
        let v = parse::parse_u64(self.data());
        if v.is_none() {
            self.stats.parse_errors += 1;
        }
        v
    }

    /// Reads a file holding one signed integer.
    pub(crate) fn read_i64(&mut self, slot: Option<usize>, dir: &Path, file: &str) -> Option<i64> {
        if !self.read_slot(slot, dir, file) {
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

/// Half the soft `RLIMIT_NOFILE`: the default number of files the task collector keeps open.
pub(crate) fn default_budget() -> usize {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(0, |(soft, _)| {
            usize::try_from(soft / 2).unwrap_or(usize::MAX)
        })
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (as Go programs do at start) and returns the new soft limit.
/// Call it before creating a [`crate::TaskCollector`] so its default budget of kept-open files grows with it.
pub fn raise_fd_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).ok()?;
    Some(hard)
}
