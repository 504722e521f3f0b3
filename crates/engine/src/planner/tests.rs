//! Table and property tests of the planner, including a simulation of whole rollouts.

use super::*;
use proptest::prelude::*;

fn target(n: u32, mhc: f64, moc: f64, rolling: bool) -> AppTarget {
    AppTarget {
        instances: n,
        minimum_health_capacity: mhc,
        maximum_over_capacity: moc,
        kill_selection: KillSelection::YoungestFirst,
        rolling,
        may_launch: true,
    }
}

fn task(id: usize, current: bool, healthy: bool) -> TaskView {
    TaskView {
        id: format!("t{id}"),
        current_config: current,
        running: true,
        healthy,
        killing: false,
        staged_at: id as i64,
    }
}

#[test]
fn bounds_follow_marathon() {
    assert_eq!(bounds(&target(3, 1.0, 1.0, true)), (3, 6));
    assert_eq!(bounds(&target(4, 0.5, 0.0, true)), (2, 4));
    assert_eq!(
        bounds(&target(1, 1.0, 0.0, true)),
        (1, 2),
        "one-slot surplus"
    );
    assert_eq!(bounds(&target(3, 0.0, 0.0, true)), (0, 3));
}

#[test]
fn steady_state_is_idempotent() {
    let tasks: Vec<_> = (0..3).map(|i| task(i, true, true)).collect();
    assert!(plan(&target(3, 1.0, 1.0, false), &tasks).is_empty());
    assert!(plan(&target(3, 1.0, 1.0, true), &tasks).is_empty());
}

#[test]
fn scale_down_kills_youngest_and_unhealthy_first() {
    let mut tasks: Vec<_> = (0..4).map(|i| task(i, true, true)).collect();
    tasks[1].healthy = false;
    let p = plan(&target(2, 1.0, 1.0, false), &tasks);
    let ids: Vec<_> = p.kill.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["t1", "t3"]);
}

#[test]
fn rolling_with_defaults_starts_all_new_then_kills_old() {
    let tasks: Vec<_> = (0..3).map(|i| task(i, false, true)).collect();
    let p = plan(&target(3, 1.0, 1.0, true), &tasks);
    assert_eq!(
        p,
        Plan {
            launch: 3,
            kill: vec![]
        }
    );
}

#[test]
fn rolling_half_capacity_kills_two_first() {
    let tasks: Vec<_> = (0..4).map(|i| task(i, false, true)).collect();
    let p = plan(&target(4, 0.5, 0.0, true), &tasks);
    assert_eq!(p.kill.len(), 2);
    assert_eq!(
        p.launch, 0,
        "killed tasks still occupy capacity until they are gone"
    );
}

#[test]
fn backoff_blocks_launches_only() {
    let mut t = target(3, 1.0, 1.0, false);
    t.may_launch = false;
    assert!(plan(&t, &[]).is_empty());
}

/// A tiny world: applies plans, turns launched tasks healthy after a step, removes killed
/// ones after a step, and checks the invariants on every step.
fn simulate(t: &AppTarget, mut tasks: Vec<TaskView>, fail_every: Option<usize>) -> usize {
    let (min_healthy, max_cap) = bounds(t);
    let mut next_id = 1000;
    for step in 0..200 {
        let healthy_before = tasks.iter().filter(|x| x.healthy && !x.killing).count();
        let occupied_before = tasks.len();
        let p = plan(t, &tasks);
        // Invariant: never kill below the health floor (unless already below it).
        let killed_healthy = p
            .kill
            .iter()
            .filter(|(id, _)| tasks.iter().any(|x| &x.id == id && x.healthy))
            .count();
        assert!(
            healthy_before - killed_healthy >= (min_healthy as usize).min(healthy_before),
            "step {step}: health {healthy_before} - {killed_healthy} below {min_healthy}"
        );
        // Invariant: never launch above capacity.
        if t.rolling && p.launch > 0 {
            assert!(
                occupied_before + p.launch as usize <= max_cap as usize,
                "step {step}: over capacity"
            );
        }
        if p.is_empty()
            && tasks.iter().all(|x| x.current_config && x.healthy)
            && tasks.len() == t.instances as usize
        {
            return step;
        }
        // The world advances: killing tasks vanish, new tasks become healthy.
        tasks.retain(|x| !x.killing);
        for (id, _) in &p.kill {
            if let Some(x) = tasks.iter_mut().find(|x| &x.id == id) {
                x.killing = true;
                x.healthy = false;
            }
        }
        for x in tasks
            .iter_mut()
            .filter(|x| !x.killing && !x.healthy && x.current_config)
        {
            x.running = true;
            x.healthy = true;
        }
        for _ in 0..p.launch {
            next_id += 1;
            let fails = fail_every.is_some_and(|k| next_id % k == 0);
            tasks.push(TaskView {
                id: format!("t{next_id}"),
                current_config: true,
                running: false,
                healthy: false,
                killing: fails,
                staged_at: next_id as i64,
            });
        }
    }
    panic!("no convergence: {tasks:?}");
}

#[test]
fn rollouts_converge_for_marathon_examples() {
    for (n, mhc, moc) in [
        (3, 1.0, 1.0),
        (4, 0.5, 0.0),
        (3, 0.0, 0.0),
        (1, 1.0, 0.0),
        (3, 1.0, 0.0),
        (5, 0.8, 0.2),
    ] {
        let t = target(n, mhc, moc, true);
        let old: Vec<_> = (0..n as usize).map(|i| task(i, false, true)).collect();
        simulate(&t, old, None);
    }
}

fn arb_task() -> impl Strategy<Value = (bool, bool, bool, bool)> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::bool::weighted(0.1),
    )
}

proptest! {
    /// One step from any state never breaks the health floor or the capacity ceiling.
    #[test]
    fn single_step_respects_bounds(
        n in 0u32..8,
        mhc in 0.0f64..=1.0,
        moc in 0.0f64..=1.0,
        rolling in any::<bool>(),
        raw in prop::collection::vec(arb_task(), 0..14),
    ) {
        let t = target(n, mhc, moc, rolling);
        let tasks: Vec<TaskView> = raw.iter().enumerate().map(|(i, &(cur, running, healthy, killing))| TaskView {
            id: format!("t{i}"), current_config: cur, running, healthy: healthy && running, killing, staged_at: i as i64,
        }).collect();
        let (min_healthy, max_cap) = bounds(&t);
        let healthy = tasks.iter().filter(|x| x.healthy && !x.killing).count();
        let p = plan(&t, &tasks);
        let killed_healthy = p.kill.iter().filter(|(id, _)| tasks.iter().any(|x| &x.id == id && x.healthy)).count();
        if rolling {
            prop_assert!(healthy - killed_healthy >= (min_healthy as usize).min(healthy));
            if p.launch > 0 {
                prop_assert!(tasks.len() + p.launch as usize <= max_cap as usize);
            }
        }
        // Never kills a task twice or a task that is already being killed.
        for (id, _) in &p.kill {
            prop_assert!(tasks.iter().any(|x| &x.id == id && !x.killing));
        }
        let mut ids: Vec<_> = p.kill.iter().map(|(id, _)| id).collect();
        ids.dedup();
        prop_assert_eq!(ids.len(), p.kill.len());
        // Never launches beyond the instance count.
        let active_new = tasks.iter().filter(|x| !x.killing && (x.current_config || !rolling)).count();
        prop_assert!(active_new + p.launch as usize <= (n as usize).max(active_new));
    }

    /// Whole rollouts from any old fleet converge, with launch failures sprinkled in.
    #[test]
    fn rollouts_converge(n in 1u32..7, mhc in 0.0f64..=1.0, moc in 0.0f64..=1.0, old in 0usize..8, fail in prop::option::of(3usize..7)) {
        let t = target(n, mhc, moc, true);
        let tasks: Vec<_> = (0..old).map(|i| task(i, false, true)).collect();
        simulate(&t, tasks, fail);
    }
}
