//! Unit tests of engine helpers (the end-to-end behaviour is tested through the API crate
//! and the binary's integration tests).

use crate::launch::probe_due;
use health::{CheckParams, HealthState};

fn params(interval: u32, grace: u32) -> CheckParams {
    CheckParams {
        interval_seconds: interval,
        grace_period_seconds: grace,
        ..CheckParams::default()
    }
}

#[test]
fn never_healthy_tasks_in_grace_are_probed_quickly() {
    let p = params(10, 60);
    let fresh = HealthState::default();
    // First probe at start, then every 50 ms while in grace and never passed.
    assert_eq!(probe_due(&fresh, 1_000, None, &p, 1_000), 1_000);
    assert_eq!(probe_due(&fresh, 1_000, Some(1_000), &p, 1_020), 1_050);
    // After the grace period, Marathon's interval applies.
    assert_eq!(probe_due(&fresh, 1_000, Some(70_000), &p, 70_050), 80_000);
    // After the first success, too.
    let passed = HealthState {
        first_success: Some(1_100),
        alive: Some(true),
        ..HealthState::default()
    };
    assert_eq!(probe_due(&passed, 1_000, Some(1_100), &p, 1_150), 11_100);
}
