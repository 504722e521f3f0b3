//! Keeps the edge proxy's routes equal to the engine's healthy tasks: every engine event
//! (task started, health changed, kill started, app changed) triggers a rebuild of the
//! endpoints, batched so a burst of events costs one update.

use engine::Engine;
use proxy::Proxy;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// How long to gather a burst of events before one update.
const BATCH: Duration = Duration::from_millis(5);

/// The proxy as the engine's drain gate.
pub(crate) struct Gate(pub(crate) Proxy);

impl engine::TrafficGate for Gate {
    fn drained(&self, task_id: &str) -> bool {
        self.0.drained(task_id)
    }
}

/// Runs until `shutdown`: initial routes, then one update per burst of events.
pub(crate) async fn run(engine: Engine, proxy: Proxy, shutdown: CancellationToken) {
    let mut events = engine.events().subscribe();
    update(&engine, &proxy).await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            ev = events.recv() => match ev {
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    tokio::time::sleep(BATCH).await;
                    while let Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) = events.try_recv() {}
                    update(&engine, &proxy).await;
                }
                Err(RecvError::Closed) => return,
            },
            // Also converge periodically, in case an event was missed.
            _ = tokio::time::sleep(Duration::from_secs(2)) => update(&engine, &proxy).await,
        }
    }
}

async fn update(engine: &Engine, proxy: &Proxy) {
    for e in proxy.update(engine.endpoints()).await {
        tracing::warn!(error = %e, "proxy listener");
    }
}
