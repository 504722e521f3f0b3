//! The deployment planner: a pure function from one app's desired state and its observed
//! tasks to the launches and kills that move it closer, following Marathon's rules.
//!
//! It is level-triggered: called on every reconcile tick with a fresh snapshot, it computes
//! the next safe actions from scratch. That is what makes deployments crash-only: after a
//! restart the engine simply plans again from what is running.
//!
//! Two modes:
//! - steady (no restart in progress): keep `instances` tasks, whatever their version
//!   (Marathon's scale semantics; a force-cancelled rollout stays mixed);
//! - rolling (a config change or restart is deploying): replace old-config tasks with new
//!   ones without letting healthy tasks drop below `ceil(N × minimumHealthCapacity)` and
//!   without occupying more than `floor(N × (1 + maximumOverCapacity))` slots.

use model::KillSelection;

/// Observed condition of one task, as far as the planner cares.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskView {
    /// Task id.
    pub id: String,
    /// True when the task was launched from the target configuration.
    pub current_config: bool,
    /// Process running (not staging).
    pub running: bool,
    /// Passing its health checks (or running, for apps without checks).
    pub healthy: bool,
    /// Already being killed; it still occupies capacity until it is gone.
    pub killing: bool,
    /// Launch time in ms, for kill selection.
    pub staged_at: i64,
}

/// What the planner needs to know about the app.
#[derive(Clone, Debug, PartialEq)]
pub struct AppTarget {
    /// Desired instance count.
    pub instances: u32,
    /// `upgradeStrategy.minimumHealthCapacity`.
    pub minimum_health_capacity: f64,
    /// `upgradeStrategy.maximumOverCapacity`.
    pub maximum_over_capacity: f64,
    /// Scale-down order.
    pub kill_selection: KillSelection,
    /// A restart (config change) deployment is in progress for this app.
    pub rolling: bool,
    /// Launches are allowed now (no backoff delay pending).
    pub may_launch: bool,
}

/// Why the planner wants a task gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillCause {
    /// More tasks than `instances`.
    ScaleDown,
    /// Replaced by a task of the new configuration.
    Upgrade,
}

/// The actions for one tick.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Number of new tasks to launch from the target configuration.
    pub launch: u32,
    /// Tasks to kill, in order.
    pub kill: Vec<(String, KillCause)>,
}

impl Plan {
    /// True when nothing needs doing.
    pub fn is_empty(&self) -> bool {
        self.launch == 0 && self.kill.is_empty()
    }
}

/// Health floor and capacity ceiling of a rolling upgrade, as Marathon computes them
/// (`TaskReplaceActor.computeRestartStrategy`), including the one-slot surplus that lets a
/// `(1.0, 0.0)` strategy make progress.
pub fn bounds(target: &AppTarget) -> (u32, u32) {
    let n = f64::from(target.instances);
    let min_healthy = (n * target.minimum_health_capacity).ceil() as u32;
    let mut max_cap = (n * (1.0 + target.maximum_over_capacity)).floor() as u32;
    if target.instances > 0 && max_cap <= min_healthy {
        max_cap = min_healthy + 1;
    }
    (
        min_healthy.min(target.instances),
        max_cap.max(target.instances),
    )
}

/// Plans the next actions for one app.
pub fn plan(target: &AppTarget, tasks: &[TaskView]) -> Plan {
    if target.rolling {
        plan_rolling(target, tasks)
    } else {
        plan_steady(target, tasks)
    }
}

/// Orders tasks so the best kill candidates come first: not yet running, then unhealthy,
/// then old configuration, then by `killSelection`.
fn kill_order(mut tasks: Vec<&TaskView>, sel: KillSelection) -> Vec<&TaskView> {
    tasks.sort_by(|a, b| {
        let rank = |t: &TaskView| (t.running, t.healthy, t.current_config);
        rank(a).cmp(&rank(b)).then_with(|| match sel {
            KillSelection::YoungestFirst => b.staged_at.cmp(&a.staged_at),
            KillSelection::OldestFirst => a.staged_at.cmp(&b.staged_at),
        })
    });
    tasks
}

fn plan_steady(target: &AppTarget, tasks: &[TaskView]) -> Plan {
    let active: Vec<&TaskView> = tasks.iter().filter(|t| !t.killing).collect();
    let n = target.instances as usize;
    let mut plan = Plan::default();
    if active.len() > n {
        let excess = active.len() - n;
        plan.kill = kill_order(active, target.kill_selection)
            .into_iter()
            .take(excess)
            .map(|t| (t.id.clone(), KillCause::ScaleDown))
            .collect();
    } else if active.len() < n && target.may_launch {
        plan.launch = (n - active.len()) as u32;
    }
    plan
}

fn plan_rolling(target: &AppTarget, tasks: &[TaskView]) -> Plan {
    let (min_healthy, max_cap) = bounds(target);
    let n = target.instances as usize;
    let occupied = tasks.len();
    let active: Vec<&TaskView> = tasks.iter().filter(|t| !t.killing).collect();
    let new: Vec<&TaskView> = active
        .iter()
        .copied()
        .filter(|t| t.current_config)
        .collect();
    let old: Vec<&TaskView> = active
        .iter()
        .copied()
        .filter(|t| !t.current_config)
        .collect();
    let mut healthy = active.iter().filter(|t| t.healthy).count();
    let mut plan = Plan::default();

    // Surplus new tasks (instances lowered during the rollout): unhealthy ones first.
    let mut new_kept = new.len();
    if new.len() > n {
        for t in kill_order(new.clone(), target.kill_selection)
            .into_iter()
            .take(new.len() - n)
        {
            if t.healthy && healthy <= min_healthy as usize {
                break;
            }
            if t.healthy {
                healthy -= 1;
            }
            new_kept -= 1;
            plan.kill.push((t.id.clone(), KillCause::ScaleDown));
        }
    }
    // Old tasks: unhealthy ones may always go; healthy ones only above the health floor.
    for t in kill_order(old, target.kill_selection) {
        if t.healthy {
            if healthy <= min_healthy as usize {
                continue;
            }
            healthy -= 1;
        }
        plan.kill.push((t.id.clone(), KillCause::Upgrade));
    }
    // Launch new tasks into the free capacity; tasks being killed still occupy a slot.
    if target.may_launch && new_kept < n {
        let room = (max_cap as usize).saturating_sub(occupied);
        plan.launch = (n - new_kept).min(room) as u32;
    }
    plan
}

#[cfg(test)]
#[path = "planner/tests.rs"]
mod tests;
