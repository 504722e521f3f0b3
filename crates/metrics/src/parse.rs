//! Allocation-free parsers for cgroup and /proc files; every one tolerates garbage by skipping what it cannot read.

/// Splits on ASCII whitespace, skipping empty fields.
pub(crate) fn fields(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
}

/// Lines of a buffer (without the newline).
pub(crate) fn lines(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    buf.split(|&b| b == b'\n')
}

/// Trims ASCII whitespace at both ends.
pub(crate) fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

/// A decimal unsigned integer (surrounding whitespace allowed).
pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    let s = trim(s);
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

/// A decimal signed integer (surrounding whitespace allowed).
pub(crate) fn parse_i64(s: &[u8]) -> Option<i64> {
    let s = trim(s);
    match s.strip_prefix(b"-") {
        Some(rest) => parse_u64(rest)
            .and_then(|v| i64::try_from(v).ok())
            .map(|v| -v),
        None => parse_u64(s).and_then(|v| i64::try_from(v).ok()),
    }
}

/// A float such as a load average (`0.52`).
pub(crate) fn parse_f64(s: &[u8]) -> Option<f64> {
    std::str::from_utf8(trim(s)).ok()?.parse().ok()
}

/// Calls `f(key, value)` for every `key value` line whose value is an unsigned integer (`memory.stat`, `cpu.stat`, ...).
pub(crate) fn key_values(buf: &[u8], mut f: impl FnMut(&[u8], u64)) {
    for line in lines(buf) {
        let mut it = fields(line);
        if let (Some(k), Some(v)) = (it.next(), it.next())
            && let Some(v) = parse_u64(v)
        {
            f(k, v);
        }
    }
}

/// `cpu.max` (v2): `"max 100000"` or `"50000 100000"` gives (quota or None, period).
pub(crate) fn cpu_max(buf: &[u8]) -> Option<(Option<u64>, u64)> {
    let mut it = fields(buf);
    let quota = it.next()?;
    let period = parse_u64(it.next()?)?;
    if quota == b"max" {
        Some((None, period))
    } else {
        Some((Some(parse_u64(quota)?), period))
    }
}

/// `MAJ:MIN` device numbers.
pub(crate) fn dev(s: &[u8]) -> Option<(u32, u32)> {
    let colon = s.iter().position(|&b| b == b':')?;
    let maj = u32::try_from(parse_u64(&s[..colon])?).ok()?;
    let min = u32::try_from(parse_u64(&s[colon + 1..])?).ok()?;
    Some((maj, min))
}

/// Block I/O per device from v1 `blkio.throttle.io_service_bytes_recursive` / `io_serviced_recursive`:
/// calls `f(dev, read, write)` per device (lines `8:0 Read 123`; `Total` lines are skipped).
pub(crate) fn blkio_v1(buf: &[u8], mut f: impl FnMut((u32, u32), u64, u64)) {
    let mut cur: Option<((u32, u32), u64, u64)> = None;
    for line in lines(buf) {
        let mut it = fields(line);
        let (Some(d), Some(op), Some(v)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let (Some(d), Some(v)) = (dev(d), parse_u64(v)) else {
            continue;
        };
        match cur {
            Some((cd, r, w)) if cd != d => {
                f(cd, r, w);
                cur = Some((d, 0, 0));
            }
            None => cur = Some((d, 0, 0)),
            _ => {}
        }
        if let Some((_, r, w)) = cur.as_mut() {
            match op {
                b"Read" => *r = r.saturating_add(v),
                b"Write" => *w = w.saturating_add(v),
                _ => {}
            }
        }
    }
    if let Some((d, r, w)) = cur {
        f(d, r, w);
    }
}

/// One device of v2 `io.stat`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IoStat {
    pub(crate) rbytes: u64,
    pub(crate) wbytes: u64,
    pub(crate) rios: u64,
    pub(crate) wios: u64,
}

/// v2 `io.stat`: `8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0` per line.
pub(crate) fn io_stat(buf: &[u8], mut f: impl FnMut((u32, u32), IoStat)) {
    for line in lines(buf) {
        let mut it = fields(line);
        let Some(d) = it.next().and_then(dev) else {
            continue;
        };
        let mut s = IoStat::default();
        for kv in it {
            let Some(eq) = kv.iter().position(|&b| b == b'=') else {
                continue;
            };
            let Some(v) = parse_u64(&kv[eq + 1..]) else {
                continue;
            };
            match &kv[..eq] {
                b"rbytes" => s.rbytes = v,
                b"wbytes" => s.wbytes = v,
                b"rios" => s.rios = v,
                b"wios" => s.wios = v,
                _ => {}
            }
        }
        f(d, s);
    }
}

/// `/proc/net/dev`: calls `f(interface, counters)` with the 16 counters
/// (rx bytes packets errs drop fifo frame compressed multicast, tx bytes packets errs drop fifo colls carrier compressed).
pub(crate) fn net_dev(buf: &[u8], mut f: impl FnMut(&str, &[u64; 16])) {
    for line in lines(buf) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let Ok(name) = std::str::from_utf8(trim(&line[..colon])) else {
            continue;
        };
        if name.is_empty() || name.contains('|') {
            continue;
        }
        let mut vals = [0u64; 16];
        let mut n = 0;
        for (slot, field) in vals.iter_mut().zip(fields(&line[colon + 1..])) {
            match parse_u64(field) {
                Some(v) => *slot = v,
                None => break,
            }
            n += 1;
        }
        if n == 16 {
            f(name, &vals);
        }
    }
}

/// Number of non-empty lines (`cgroup.procs`, `tasks`).
pub(crate) fn count_lines(buf: &[u8]) -> u64 {
    lines(buf).filter(|l| !trim(l).is_empty()).count() as u64
}

/// Field 22 (`starttime`, clock ticks since boot) of `/proc/PID/stat`.
pub(crate) fn proc_start_ticks(buf: &[u8]) -> Option<u64> {
    let close = buf.iter().rposition(|&b| b == b')')?;
    // Fields after the command: 3 (state) is the first; starttime is field 22, so the 20th after ')'.
    fields(&buf[close + 1..]).nth(19).and_then(parse_u64)
}

/// Per-CPU line of `/proc/stat`: `None` for the aggregate `cpu` line, `Some(n)` for `cpuN`, with the first 8 times
/// (user nice system idle iowait irq softirq steal) in clock ticks.
pub(crate) fn proc_stat(
    buf: &[u8],
    mut cpu: impl FnMut(Option<u32>, &[u64; 8]),
    mut btime: impl FnMut(u64),
) {
    for line in lines(buf) {
        let mut it = fields(line);
        let Some(key) = it.next() else {
            continue;
        };
        if key == b"btime" {
            if let Some(v) = it.next().and_then(parse_u64) {
                btime(v);
            }
            continue;
        }
        let Some(rest) = key.strip_prefix(b"cpu") else {
            continue;
        };
        let id = if rest.is_empty() {
            None
        } else {
            match parse_u64(rest).and_then(|v| u32::try_from(v).ok()) {
                Some(v) => Some(v),
                None => continue,
            }
        };
        let mut vals = [0u64; 8];
        let mut n = 0;
        for (slot, field) in vals.iter_mut().zip(it) {
            match parse_u64(field) {
                Some(v) => *slot = v,
                None => break,
            }
            n += 1;
        }
        // Kernels before 2.6.11 lack steal; accept 4 or more fields, missing ones stay 0.
        if n >= 4 {
            cpu(id, &vals);
        }
    }
}

/// `/proc/meminfo`: calls `f(key, bytes)` (values given in kB are converted; unitless counts are passed as is).
pub(crate) fn meminfo(buf: &[u8], mut f: impl FnMut(&[u8], u64)) {
    for line in lines(buf) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let mut it = fields(&line[colon + 1..]);
        let Some(v) = it.next().and_then(parse_u64) else {
            continue;
        };
        let v = match it.next() {
            Some(b"kB") => v.saturating_mul(1024),
            _ => v,
        };
        f(trim(&line[..colon]), v);
    }
}

/// `/proc/loadavg`: the 1, 5 and 15 minute load averages.
pub(crate) fn loadavg(buf: &[u8]) -> Option<[f64; 3]> {
    let mut it = fields(buf);
    Some([
        parse_f64(it.next()?)?,
        parse_f64(it.next()?)?,
        parse_f64(it.next()?)?,
    ])
}

/// One line of `/proc/diskstats`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DiskStat {
    pub(crate) reads: u64,
    pub(crate) read_sectors: u64,
    pub(crate) writes: u64,
    pub(crate) write_sectors: u64,
    pub(crate) io_ms: u64,
}

/// `/proc/diskstats`: `f(major, minor, name, stats)` per line with at least 14 fields.
pub(crate) fn diskstats(buf: &[u8], mut f: impl FnMut(u32, u32, &str, DiskStat)) {
    for line in lines(buf) {
        let mut it = fields(line);
        let (Some(maj), Some(min), Some(name)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let (Some(maj), Some(min), Ok(name)) = (
            parse_u64(maj).and_then(|v| u32::try_from(v).ok()),
            parse_u64(min).and_then(|v| u32::try_from(v).ok()),
            std::str::from_utf8(name),
        ) else {
            continue;
        };
        let mut v = [0u64; 11];
        let mut n = 0;
        for (slot, field) in v.iter_mut().zip(it) {
            match parse_u64(field) {
                Some(x) => *slot = x,
                None => break,
            }
            n += 1;
        }
        if n < 11 {
            continue;
        }
        f(
            maj,
            min,
            name,
            DiskStat {
                reads: v[0],
                read_sectors: v[2],
                writes: v[4],
                write_sectors: v[6],
                io_ms: v[9],
            },
        );
    }
}

/// Decodes the octal escapes (`\040` for a space) of `/proc/mounts` fields.
pub(crate) fn unescape_octal(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let oct = s
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .map(|d| d.iter().fold(0u32, |a, b| a * 8 + u32::from(b - b'0')));
        match (s[i], oct) {
            (b'\\', Some(v)) if v <= 0xff => {
                out.push(v as u8);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `/proc/mounts`: `f(device, mountpoint, fstype, options)` per line, escapes decoded.
pub(crate) fn mounts(buf: &[u8], mut f: impl FnMut(String, String, &str, &str)) {
    for line in lines(buf) {
        let mut it = fields(line);
        let (Some(d), Some(m), Some(t), Some(o)) = (it.next(), it.next(), it.next(), it.next())
        else {
            continue;
        };
        let (Ok(t), Ok(o)) = (std::str::from_utf8(t), std::str::from_utf8(o)) else {
            continue;
        };
        f(unescape_octal(d), unescape_octal(m), t, o);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        assert_eq!(parse_u64(b" 42\n"), Some(42));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_i64(b"-1\n"), Some(-1));
        assert_eq!(parse_i64(b"100000"), Some(100_000));
    }

    #[test]
    fn cpu_max_forms() {
        assert_eq!(cpu_max(b"max 100000\n"), Some((None, 100_000)));
        assert_eq!(cpu_max(b"50000 100000\n"), Some((Some(50_000), 100_000)));
        assert_eq!(cpu_max(b"garbage"), None);
    }

    #[test]
    fn blkio_groups_devices() {
        let text = b"8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 12288\n\
                     253:1 Read 1\n253:1 Write 2\n253:1 Total 3\nTotal 12291\n";
        let mut got = Vec::new();
        blkio_v1(text, |d, r, w| got.push((d, r, w)));
        assert_eq!(got, vec![((8, 0), 4096, 8192), ((253, 1), 1, 2)]);
    }

    #[test]
    fn net_dev_lines() {
        let text = b"Inter-|   Receive                                                |  Transmit\n \
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo: 1000 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0\n  eth0:2000 20 1 2 0 0 0 0 3000 30 3 4 0 0 0 0\n";
        let mut got = Vec::new();
        net_dev(text, |n, v| {
            got.push((
                n.to_owned(),
                v[0],
                v[1],
                v[2],
                v[3],
                v[8],
                v[9],
                v[10],
                v[11],
            ))
        });
        assert_eq!(
            got,
            vec![
                ("lo".to_owned(), 1000, 10, 0, 0, 1000, 10, 0, 0),
                ("eth0".to_owned(), 2000, 20, 1, 2, 3000, 30, 3, 4)
            ]
        );
    }

    #[test]
    fn proc_pid_stat_start_time() {
        let text = b"1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 6 0 0 20 0 1 0 98765 1000 10 \n";
        assert_eq!(proc_start_ticks(text), Some(98765));
        assert_eq!(proc_start_ticks(b"1 (x) S"), None);
    }

    #[test]
    fn octal_escapes() {
        assert_eq!(unescape_octal(br"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape_octal(br"/x\\y\9"), r"/x\\y\9");
    }
}
