//! cAdvisor-shaped line protocol for the store benchmark: the measurements, tags and
//! single `value` field cAdvisor's InfluxDB storage driver writes (one measurement per
//! metric; tags `machine`, `container_name` and the container's labels, here `app`), in
//! three value shapes, cut into per-client batches.
//!
//! Every client owns a quarter of the containers and sends its batches in time order, so
//! each series' samples arrive in order whatever the interleaving of the clients: Slipway's
//! store rejects a sample older than its series' newest.

use std::fmt::Write as _;

/// The measurements of one container, as cAdvisor's InfluxDB driver names them.
pub(crate) const METRICS: [&str; 10] = [
    "cpu_usage_total",
    "cpu_usage_user",
    "cpu_usage_system",
    "memory_usage",
    "memory_working_set",
    "memory_rss",
    "memory_cache",
    "rx_bytes",
    "tx_bytes",
    "rx_errors",
];

/// The shape of the values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Random walks printed with two decimals (steps of up to ±1.00).
    Walk2,
    /// Random walks at full `f64` precision (the shortest round-trip text, ~16 digits).
    WalkFull,
    /// What Slipway's own collector records: counters that only grow (CPU seconds at
    /// nanosecond and 10 ms resolution, byte counters, an error counter that stays 0)
    /// and memory gauges in pages that change now and then; rounds a few ms late.
    CountersGauges,
}

impl Kind {
    pub(crate) fn title(self) -> &'static str {
        match self {
            Kind::Walk2 => "random-walk floats, 2 decimals",
            Kind::WalkFull => "random-walk floats, full precision",
            Kind::CountersGauges => "counters and gauges (collector-shaped)",
        }
    }
}

/// What to generate.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spec {
    pub(crate) kind: Kind,
    /// Series in all (10 per container).
    pub(crate) series: usize,
    /// Values in all (`series` × samples per series).
    pub(crate) values: usize,
    /// Lines per request.
    pub(crate) batch_lines: usize,
    /// Concurrent clients.
    pub(crate) clients: usize,
    /// Timestamp of the last round, ms.
    pub(crate) last_ms: i64,
    /// The rounds spread evenly over this span, ending at `last_ms`.
    pub(crate) span_ms: i64,
}

/// Generated requests, per client in sending order.
pub(crate) struct Dataset {
    pub(crate) spec: Spec,
    pub(crate) batches: Vec<Vec<Vec<u8>>>,
    pub(crate) values: usize,
    pub(crate) bytes: usize,
    pub(crate) interval_ms: i64,
}

/// splitmix64: small, fast, deterministic (the footprint scenario's history uses it too).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

/// One series' generator state.
struct SeriesGen {
    rng: Rng,
    metric: usize,
    /// Walk value (`WalkFull`).
    x: f64,
    /// Walk in hundredths, counter, or gauge in pages.
    n: i64,
    /// Counter increase per round (mean), or CPU cores in millicores.
    rate: i64,
}

impl SeriesGen {
    fn new(kind: Kind, container: usize, metric: usize, interval_ms: i64) -> SeriesGen {
        let mut rng = Rng((container as u64) << 8 | metric as u64);
        let mut cores = Rng(container as u64 * 7919);
        let millicores = cores.range(10, 500);
        let (n, rate) = match (kind, metric) {
            (Kind::Walk2, _) => (rng.range(0, 100_000), 0),
            (Kind::WalkFull, _) => (0, 0),
            // CPU: nanoseconds, then USER_HZ ticks (70 % user, 30 % system).
            (Kind::CountersGauges, 0) => (
                rng.range(0, 1 << 40),
                millicores * interval_ms * 1_000_000 / 1_000,
            ),
            (Kind::CountersGauges, 1) => (
                rng.range(0, 1 << 24),
                millicores * interval_ms * 7 / 100_000,
            ),
            (Kind::CountersGauges, 2) => (
                rng.range(0, 1 << 24),
                millicores * interval_ms * 3 / 100_000,
            ),
            // Memory in 4 KiB pages: 16 MiB to 512 MiB.
            (Kind::CountersGauges, 3..=6) => (rng.range(4_096, 131_072), 0),
            // Bytes: 1 kB/s to 200 kB/s.
            (Kind::CountersGauges, 7 | 8) => (
                rng.range(0, 1 << 32),
                rng.range(1_000, 200_000) * interval_ms / 1_000,
            ),
            (Kind::CountersGauges, _) => (0, 0),
        };
        let x = rng.unit() * 1_000.0;
        SeriesGen {
            rng,
            metric,
            x,
            n,
            rate,
        }
    }

    /// Appends the next value's text to `out`.
    fn next(&mut self, kind: Kind, out: &mut String) {
        let r = &mut self.rng;
        match kind {
            Kind::Walk2 => {
                self.n += r.range(-100, 100);
                let _ = write!(out, "{:.2}", self.n as f64 / 100.0);
            }
            Kind::WalkFull => {
                self.x += r.unit() * 2.0 - 1.0;
                let _ = write!(out, "{}", self.x);
            }
            Kind::CountersGauges => match self.metric {
                0 => {
                    self.n += self.rate / 2 + r.range(0, self.rate.max(1));
                    let _ = write!(out, "{}", self.n as f64 / 1e9);
                }
                1 | 2 => {
                    self.n += r.range(self.rate / 2, self.rate * 3 / 2);
                    let _ = write!(out, "{}", self.n as f64 / 100.0);
                }
                3..=6 => {
                    // usage, working set, rss, cache: change in 20, 20, 10, 5 % of rounds.
                    let p = [0.2, 0.2, 0.1, 0.05][self.metric - 3];
                    if r.unit() < p {
                        self.n = (self.n + r.range(-8, 8)).max(1);
                    }
                    let _ = write!(out, "{}", self.n * 4_096);
                }
                7 | 8 => {
                    self.n += r.range(0, 2 * self.rate);
                    let _ = write!(out, "{}", self.n);
                }
                _ => out.push('0'),
            },
        }
    }
}

/// The tags of container `c` (sorted by key, as the docs recommend).
pub(crate) fn tags(c: usize) -> String {
    format!(
        "app=app-{:02},container_name=app-{:02}.{},machine=host-{}",
        c / 10,
        c / 10,
        c % 10,
        c % 2
    )
}

/// Generates the requests of `spec`.
pub(crate) fn generate(spec: Spec) -> Dataset {
    let containers = (spec.series / METRICS.len()).max(1);
    let series = containers * METRICS.len();
    let rounds = (spec.values / series).max(2);
    let interval_ms = spec.span_ms / rounds as i64;
    let first_ms = spec.last_ms - (rounds as i64 - 1) * interval_ms;
    let mut batches = Vec::with_capacity(spec.clients);
    let mut values = 0;
    let mut bytes = 0;
    for client in 0..spec.clients {
        let mine: Vec<usize> = (0..containers)
            .filter(|c| c % spec.clients == client)
            .collect();
        let prefixes: Vec<Vec<String>> = mine
            .iter()
            .map(|&c| {
                let t = tags(c);
                METRICS.iter().map(|m| format!("{m},{t} value=")).collect()
            })
            .collect();
        let mut gens: Vec<Vec<SeriesGen>> = mine
            .iter()
            .map(|&c| {
                (0..METRICS.len())
                    .map(|m| SeriesGen::new(spec.kind, c, m, interval_ms))
                    .collect()
            })
            .collect();
        let mut out = Vec::new();
        let mut batch = String::new();
        let mut lines = 0;
        for round in 0..rounds {
            let mut t = first_ms + round as i64 * interval_ms;
            if spec.kind == Kind::CountersGauges {
                // A round starts 0–5 ms late, the same for every series of the round.
                t += Rng(round as u64).range(0, 5);
            }
            let ts_ns = t * 1_000_000;
            for (g, p) in gens.iter_mut().zip(&prefixes) {
                for (s, prefix) in g.iter_mut().zip(p) {
                    batch.push_str(prefix);
                    s.next(spec.kind, &mut batch);
                    let _ = writeln!(batch, " {ts_ns}");
                    lines += 1;
                    if lines == spec.batch_lines {
                        values += lines;
                        bytes += batch.len();
                        out.push(std::mem::take(&mut batch).into_bytes());
                        lines = 0;
                    }
                }
            }
        }
        if lines > 0 {
            values += lines;
            bytes += batch.len();
            out.push(batch.into_bytes());
        }
        batches.push(out);
    }
    Dataset {
        spec,
        batches,
        values,
        bytes,
        interval_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn spec(kind: Kind) -> Spec {
        Spec {
            kind,
            series: 80,
            values: 8_000,
            batch_lines: 700,
            clients: 4,
            last_ms: 1_700_000_000_000,
            span_ms: 3_600_000,
        }
    }

    /// (series key, timestamp ns, value) of every line, in sending order per client.
    fn lines(d: &Dataset) -> Vec<Vec<(String, i64, f64)>> {
        d.batches
            .iter()
            .map(|client| {
                client
                    .iter()
                    .flat_map(|b| std::str::from_utf8(b).expect("utf-8").lines())
                    .map(|l| {
                        let (key, rest) = l.split_once(" value=").expect("field");
                        let (v, t) = rest.split_once(' ').expect("timestamp");
                        (
                            key.to_string(),
                            t.parse().expect("ts"),
                            v.parse().expect("value"),
                        )
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn batches_hold_every_value_in_time_order_per_series_within_the_span() {
        for kind in [Kind::Walk2, Kind::WalkFull, Kind::CountersGauges] {
            let d = generate(spec(kind));
            assert_eq!(d.values, 8_000, "{kind:?}");
            assert!(
                d.batches
                    .iter()
                    .flatten()
                    .all(|b| b.iter().filter(|&&c| c == b'\n').count() <= 700)
            );
            let mut last: HashMap<String, (usize, i64, f64)> = HashMap::new();
            for (client, ls) in lines(&d).into_iter().enumerate() {
                for (key, t, v) in ls {
                    assert!(
                        t >= (1_700_000_000_000 - 3_600_000) * 1_000_000,
                        "{kind:?} {t}"
                    );
                    assert!(t <= (1_700_000_000_000 + 5) * 1_000_000, "{kind:?} {t}");
                    if let Some(&(c, pt, pv)) = last.get(&key) {
                        assert_eq!(c, client, "one client per series");
                        assert!(t > pt, "{kind:?} {key}: {t} after {pt}");
                        let counter = key.starts_with("cpu_") || key.contains("x_bytes");
                        if kind == Kind::CountersGauges && counter {
                            assert!(v >= pv, "{key}: counter went from {pv} to {v}");
                        }
                    }
                    last.insert(key, (client, t, v));
                }
            }
            assert_eq!(last.len(), 80, "{kind:?}");
        }
    }

    #[test]
    fn lines_have_cadvisor_influxdb_shape() {
        let d = generate(spec(Kind::Walk2));
        let first = std::str::from_utf8(&d.batches[1][0])
            .expect("utf-8")
            .lines()
            .next()
            .expect("a line")
            .to_string();
        let (head, _) = first.split_once(' ').expect("space");
        assert_eq!(
            head,
            "cpu_usage_total,app=app-00,container_name=app-00.1,machine=host-1"
        );
    }
}
