//! Keeps the edge proxy's routes equal to the engine's healthy tasks: the engine events
//! that change what may be routed to (a task running, being killed or gone, a health
//! flip, an app's definition changed or deleted) trigger a rebuild of the endpoints,
//! batched so a burst of events costs one update. Other events (deployment steps,
//! failed probes that do not flip health, stream clients) are ignored.

use engine::state::{ActionKind, TaskState};
use engine::{Engine, Event};
use proxy::Proxy;
use std::time::Duration;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio_util::sync::CancellationToken;

/// How long to gather a burst of events before one update.
const BATCH: Duration = Duration::from_millis(5);

/// How often routes converge without an event, in case one was missed.
const SAFETY: Duration = Duration::from_secs(2);

/// The proxy as the engine's drain gate.
pub(crate) struct Gate(pub(crate) Proxy);

impl engine::TrafficGate for Gate {
    fn drained(&self, task_id: &str) -> bool {
        self.0.drained(task_id)
    }
}

/// Runs until `shutdown`: initial routes, then one update per burst of route-relevant
/// events.
pub(crate) async fn run(engine: Engine, proxy: Proxy, shutdown: CancellationToken) {
    let mut events = engine.events().subscribe();
    update(&engine, &proxy).await;
    // An interval, not a sleep per turn: a steady stream of irrelevant events must not
    // keep postponing it.
    let mut safety = tokio::time::interval(SAFETY);
    safety.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    safety.reset();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            ev = events.recv() => {
                let relevant = match ev {
                    Ok(p) => changes_routes(&p.event),
                    // Missed events may have changed routes.
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => return,
                };
                if relevant {
                    tokio::time::sleep(BATCH).await;
                    while let Ok(_) | Err(TryRecvError::Lagged(_)) = events.try_recv() {}
                    update(&engine, &proxy).await;
                    safety.reset();
                }
            }
            _ = safety.tick() => update(&engine, &proxy).await,
        }
    }
}

/// Whether an event can change what the proxy routes to.
fn changes_routes(ev: &Event) -> bool {
    match ev {
        // Staging tasks are not routed to; every later state is a change (running, being
        // killed, gone).
        Event::TaskStatus(s) => s.state != TaskState::TaskStaging,
        Event::HealthChanged { .. } | Event::AppTerminated { .. } => true,
        // A new plan that creates, deletes or reconfigures apps (labels and ports live in
        // the configuration); a pure scale changes routes only through its tasks' events.
        Event::DeploymentInfo(d) => {
            d.current_step == 0
                && d.steps
                    .iter()
                    .flatten()
                    .any(|a| a.action != ActionKind::ScaleApplication)
        }
        Event::FailedHealthCheck { .. }
        | Event::UnhealthyKill { .. }
        | Event::AppSubmitted { .. }
        | Event::GroupChanged { .. }
        | Event::DeploymentStepSuccess(_)
        | Event::DeploymentSuccess(_)
        | Event::DeploymentFailed { .. }
        | Event::StreamAttached { .. }
        | Event::StreamDetached { .. }
        | Event::External(_) => false,
    }
}

async fn update(engine: &Engine, proxy: &Proxy) {
    for e in proxy.update(engine.endpoints()).await {
        tracing::warn!(error = %e, "proxy listener");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::TaskStatus;
    use engine::state::{Action, Deployment};
    use model::{PathId, Timestamp};
    use std::sync::Arc;

    fn status(state: TaskState) -> Event {
        Event::TaskStatus(Arc::new(TaskStatus {
            task_id: "web.1".into(),
            app_id: PathId::parse("/web"),
            version: Timestamp(1),
            state,
            message: String::new(),
            host: "127.0.0.1".into(),
            ports: vec![31000],
        }))
    }

    fn plan(action: ActionKind, current_step: usize) -> Event {
        Event::DeploymentInfo(Arc::new(Deployment {
            id: "d".into(),
            version: Timestamp(1),
            created_at: 1,
            steps: vec![vec![Action {
                action,
                app: PathId::parse("/web"),
            }]],
            current_step,
            original: vec![],
            target: vec![],
            outcome: None,
            reason: None,
            finished_at: None,
        }))
    }

    #[test]
    fn only_route_relevant_events_rebuild_the_routes() {
        assert!(!changes_routes(&status(TaskState::TaskStaging)));
        for s in [
            TaskState::TaskRunning,
            TaskState::TaskKilling,
            TaskState::TaskKilled,
            TaskState::TaskFailed,
            TaskState::TaskLost,
        ] {
            assert!(changes_routes(&status(s)), "{s:?}");
        }
        assert!(changes_routes(&plan(ActionKind::RestartApplication, 0)));
        assert!(changes_routes(&plan(ActionKind::StartApplication, 0)));
        assert!(!changes_routes(&plan(ActionKind::ScaleApplication, 0)));
        assert!(!changes_routes(&plan(ActionKind::RestartApplication, 1)));
        assert!(!changes_routes(&Event::GroupChanged {
            version: Timestamp(1)
        }));
        assert!(!changes_routes(&Event::StreamAttached {
            remote: "127.0.0.1".into()
        }));
    }
}
