//! Tests of the policy parser, the labels, the decision rules, properties and a simulation.

mod labels;
mod policy;
mod props;
mod rules;
mod sim;

use crate::{
    ControllerState, Decision, Input, Instance, Metric, Policy, Readiness, Sample, Signal, decide,
};
use model::Timestamp;

/// A base time aligned to 15 s, so the HPA preset's buckets start on whole test seconds.
const BASE_MS: i64 = 1_800_000_000_000;

/// Test time `s` seconds after the base.
fn at(s: f64) -> Timestamp {
    Timestamp(BASE_MS + (s * 1000.0).round() as i64)
}

/// A ready instance (started long ago) with one sample of `signal` at `now`.
fn ready(id: &str, signal: Signal, now: f64, value: f64) -> Instance {
    Instance {
        id: id.into(),
        readiness: Readiness::Ready,
        started_at: at(now - 3600.0),
        ready_since: Some(at(now - 3590.0)),
        samples: vec![Sample {
            signal,
            at: at(now),
            value,
        }],
    }
}

/// An instance in `readiness`, started `age` seconds before `now`, with one sample.
fn young(
    id: &str,
    readiness: Readiness,
    now: f64,
    age: f64,
    signal: Signal,
    value: f64,
) -> Instance {
    Instance {
        id: id.into(),
        readiness,
        started_at: at(now - age),
        ready_since: (readiness == Readiness::Ready).then(|| at(now - age / 2.0)),
        samples: vec![Sample {
            signal,
            at: at(now),
            value,
        }],
    }
}

fn rps_policy(min: u32, max: u32, target: f64) -> Policy {
    Policy::new(min, max, vec![Metric::Rps { target }])
}

/// Calls `decide` once per second from `from` to `to` (inclusive) with every ready instance
/// reporting `value(t)`; returns the decisions and the final state. The input's `current`
/// follows the decisions.
fn run(
    input: &mut Input,
    state: &mut ControllerState,
    from: u32,
    to: u32,
    value: impl Fn(f64) -> f64,
) -> Vec<Decision> {
    let mut out = Vec::new();
    for s in from..=to {
        let t = f64::from(s);
        let signal = input.policy.metrics[0].signal().unwrap_or(Signal::Rps);
        input.instances = (0..input.current)
            .map(|i| ready(&format!("i{i}"), signal, t, value(t)))
            .collect();
        let (d, next) = decide(input, state, at(t));
        *state = next;
        input.current = d.target;
        out.push(d);
    }
    out
}
