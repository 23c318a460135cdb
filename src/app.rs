//! The root: builds the store, the bus, the conversation supervisor, the
//! timer service and the HTTP listeners from one config; runs until told to
//! stop; shuts down gracefully (stop accepting, let events in flight finish,
//! commit the bus, stop the actors).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinHandle;

use crate::admin;
use crate::bus::embedded::EmbeddedBus;
use crate::bus::kafka::KafkaBus;
use crate::bus::{Bus, BusError, Ownership};
use crate::channels::gmail::api::GmailApi;
use crate::channels::graph::ClientBuildError;
use crate::channels::messenger::profiles;
use crate::channels::{GraphClient, Outbound};
use crate::clock::now_ms;
use crate::config::{BusKind, Config, Durability, ScyllaConfig, StoreKind};
use crate::conversation::intake::Intake;
use crate::conversation::supervisor::{
    ConversationSupervisor, SupervisorArgs, SupervisorMsg, SupervisorWake,
};
use crate::conversation::synced::SyncedBus;
use crate::conversation::{timers, EngineContext};
use crate::ingest::{self, IngressState};
use crate::integrations::{Integrations, KeyRing};
use crate::store::embedded::EmbeddedStore;
use crate::store::scylla::ScyllaStore;
use crate::store::tenants::{Backend, TenantStores};
use crate::store::{Store, StoreError};
use crate::telemetry::{self, TelemetryError};

mod housekeeping;
use housekeeping::housekeeping;

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Client(#[from] ClientBuildError),
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    #[error(transparent)]
    Assistant(#[from] crate::assistant::BuildError),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error(transparent)]
    Keys(#[from] crate::integrations::SealError),
    #[error("cannot start the conversation supervisor: {0}")]
    Supervisor(String),
}

/// A running engine.
pub struct RunningEngine {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    stop: oneshot::Sender<()>,
    done: JoinHandle<()>,
}

impl RunningEngine {
    /// Stops gracefully and waits until it has.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.done.await;
    }

    /// Waits until the engine stops by itself (it does not, but for a
    /// Ctrl-C handler racing it).
    pub async fn wait(&mut self) {
        let _ = (&mut self.done).await;
    }
}

/// Binds `addr` and returns the listener with the address it got (port 0
/// resolves here).
async fn bind(addr: &str) -> Result<(TcpListener, SocketAddr), StartError> {
    let failed = |reason: String| StartError::Listen {
        addr: addr.to_string(),
        reason,
    };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let local = listener.local_addr().map_err(|e| failed(e.to_string()))?;
    Ok((listener, local))
}

/// Starts the engine described by `config`.
pub async fn start(config: Config) -> Result<RunningEngine, StartError> {
    let store = open_stores(&config).await?;
    start_with_store(config, store).await
}

/// The store(s) the tenants use: one backend directly, or each tenant's
/// behind [`TenantStores`].
pub async fn open_stores(config: &Config) -> Result<Arc<dyn Store>, StoreError> {
    let mut backends: Vec<(StoreKind, Backend)> = Vec::new();
    let mut kinds: Vec<StoreKind> = config
        .tenants
        .iter()
        .map(|t| config.store_of(&t.id))
        .collect();
    kinds.push(config.store.kind);
    kinds.sort_by_key(|k| *k != config.store.kind);
    kinds.dedup();
    for kind in kinds {
        let scylla = ScyllaConfig {
            message_ttl: Some(config.store.retention),
            dead_letter_ttl: Some(config.store.dead_letter_retention),
            ..config.store.scylla.clone()
        };
        let store: Arc<dyn Store> = match kind {
            StoreKind::Embedded => {
                let store = EmbeddedStore::open_with_threads(
                    &config.store.path,
                    config.store.cache_bytes(),
                    config.store.background_threads,
                )?
                .with_group_delay(config.store.group_commit_delay);
                match config.store.durability {
                    Durability::Sync => Arc::new(store),
                    Durability::Interval => Arc::new(store.sync_later()),
                }
            }
            StoreKind::Scylla if scylla.apply_schema => Arc::new(ScyllaStore::open(&scylla).await?),
            StoreKind::Scylla => Arc::new(ScyllaStore::open_on_schema(&scylla).await?),
        };
        let integrations = config
            .integrations
            .iter()
            .filter(|i| config.store_of(&i.tenant) == kind)
            .map(|i| i.id.clone())
            .collect();
        let tenants = config
            .tenants
            .iter()
            .filter(|t| config.store_of(&t.id) == kind)
            .map(|t| t.id.clone())
            .collect();
        backends.push((
            kind,
            Backend {
                store,
                integrations,
                tenants,
            },
        ));
    }
    // Only the default backend when no tenant uses another.
    backends.retain(|(kind, b)| *kind == config.store.kind || !b.integrations.is_empty());
    if backends.len() == 1 {
        if let Some((_, only)) = backends.pop() {
            return Ok(only.store);
        }
    }
    Ok(Arc::new(TenantStores::new(
        backends.into_iter().map(|(_, b)| b).collect(),
    )))
}

/// Starts the engine with a store built by the caller (the embedded bus
/// still lives under `store.path`).
pub async fn start_with_store(
    config: Config,
    store: Arc<dyn Store>,
) -> Result<RunningEngine, StartError> {
    let config = Arc::new(config);
    let metrics = telemetry::install_metrics()?;
    let bus: Arc<dyn Bus> = match config.bus.kind {
        BusKind::Embedded => {
            let bus = EmbeddedBus::open(&config.store.path)?;
            bus.set_group_delay(config.bus.group_commit_delay);
            bus
        }
        // A revoked partition waits this long for the platform calls and
        // writes already running for its conversations.
        BusKind::Kafka => KafkaBus::open(
            &config.bus.kafka,
            config.outbound.request_timeout + Duration::from_secs(2),
        )?,
    };
    // A turn the store has not synced yet is not committed on the bus.
    let bus: Arc<dyn Bus> = if store.syncs_later() {
        SyncedBus::wrap(bus, store.clone(), config.store.sync_interval)
    } else {
        bus
    };
    let graph = GraphClient::new(&config.meta.graph_base_url, &config.outbound)?;
    let keys = KeyRing::from_env()?;
    let integrations = Arc::new(Integrations::new(config.clone(), Some(store.clone()), keys));
    if let Err(e) = integrations.refresh().await {
        tracing::warn!(error = %e, "Integrations of the store not loaded yet; retrying in the background");
    }
    let gmail = Arc::new(GmailApi::new(&config.google, &config.outbound));
    let ctx = Arc::new(EngineContext::new(
        config.clone(),
        store.clone(),
        bus.clone(),
        Outbound::new(graph).with_gmail(gmail.clone()),
        integrations.clone(),
    )?);
    let mailbox_checks = ingest::gmail::start(&ctx, gmail);
    let integrations_refresh = integrations.clone().spawn_refresh();
    let token_checks =
        crate::integrations::check::spawn(integrations.clone(), ctx.alerts.clone(), config.clone());

    // The knowledge bases are indexed before the first turn is answered.
    if let Err(e) = ctx.knowledge.refresh().await {
        tracing::warn!(error = %e, "Knowledge bases not loaded yet; retrying in the background");
    }
    let knowledge = ctx.knowledge.clone().spawn_refresh();

    let (timer_handle, timer_task) = timers::channel();
    let inflight = Arc::new(Semaphore::new(config.engine.max_inflight_events));
    let (supervisor, supervisor_done) = Actor::spawn(
        None,
        ConversationSupervisor,
        SupervisorArgs {
            ctx: ctx.clone(),
            timers: timer_handle.clone(),
            inflight: inflight.clone(),
        },
    )
    .await
    .map_err(|e| StartError::Supervisor(e.to_string()))?;
    timer_task.start(store.timers().await?, SupervisorWake(supervisor.clone()));
    announce_quarantines(&store, &supervisor).await;

    let ownership = bus.ownership().map(|changes| {
        tokio::spawn(follow_ownership(
            changes,
            supervisor.clone(),
            store.clone(),
            timer_handle.clone(),
        ))
    });
    let deliveries = bus.subscribe().await?;
    let consumer = tokio::spawn(consume(
        deliveries,
        supervisor.clone(),
        inflight.clone(),
        ctx.intake.clone(),
    ));
    let housekeeping = tokio::spawn(housekeeping(
        bus.clone(),
        store.clone(),
        config.clone(),
        integrations.clone(),
        ctx.takeover_changes.clone(),
    ));

    let (listener, addr) = bind(&config.server.listen).await?;
    // Until now every webhook sent here was refused.
    ctx.refusals.refused(now_ms());
    let (metrics_listener, metrics_addr) = bind(&config.server.metrics_listen).await?;
    let metrics_task = tokio::spawn(telemetry::serve_metrics(metrics_listener, metrics));

    let health = ctx.health.clone();
    let ingress = Arc::new(IngressState::new(
        &config,
        integrations.clone(),
        bus.clone(),
        health.clone(),
        ctx.refusals.clone(),
    ));
    let store_watch = tokio::spawn(ingest::watch_store(store.clone(), health));
    let app = ingest::limit(
        ingest::refuse_while_stopping(
            ingest::router(ingress, config.server.max_body_bytes)
                .nest("/api/v1", admin::router(ctx.clone()))
                .merge(crate::connect::router(ctx.clone()))
                .merge(ingest::web::router(ctx.clone()))
                .merge(crate::console::router()),
            ctx.stopping.subscribe(),
            ctx.refusals.clone(),
        ),
        ingest::ListenerLimits::from_config(&config),
        ctx.refusals.clone(),
    );
    let profiles = tokio::spawn(profiles::push_all(
        ctx.outbound.clone(),
        ctx.integrations.values(),
    ));
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let grace = config.engine.shutdown_grace;
    let stopping = ctx.stopping.clone();
    let sockets = ctx.sockets.clone();
    let store_at_stop = store.clone();
    let done = tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let (close_tx, close_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(std::future::IntoFuture::into_future(
            axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = close_rx.await;
            }),
        ));
        let _ = stop_rx.await;
        // From here webhooks and /readyz answer 503 (the platforms retry,
        // a load balancer moves on) and console streams end, while the
        // events taken are finished and their progress committed.
        stopping.send_replace(true);
        tracing::info!("Stopping: webhooks get 503; finishing events in flight");
        consumer.abort();
        drain(&supervisor, grace).await;
        if let Err(e) = bus.flush_commits().await {
            tracing::warn!(error = %e, "Cannot commit bus progress at shutdown; events will be replayed");
        }
        // Then the listener closes. Connections still busy after `grace`
        // (a console stream whose reader stopped reading, a slow client)
        // are not waited for.
        let _ = close_tx.send(());
        let abort = server.abort_handle();
        match tokio::time::timeout(grace, server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "HTTP server failed"),
            Ok(Err(e)) => tracing::error!(error = %e, "HTTP server task failed"),
            Err(_) => {
                tracing::warn!(
                    "Connections still open after the shutdown grace; no longer waiting for them"
                );
                abort.abort();
            }
        }
        // Widget sockets are not the listener's connections once upgraded;
        // each was told to reconnect when stopping began and lets go of
        // the engine (and its store) when its close is sent.
        sockets.close();
        if tokio::time::timeout(grace, sockets.wait()).await.is_err() {
            tracing::warn!(
                open = sockets.len(),
                "Widget sockets still closing after the shutdown grace; no longer waiting for them"
            );
        }
        bus.close().await;
        supervisor.stop(None);
        let _ = supervisor_done.await;
        // Aborted tasks are dropped by the runtime later; waiting for them
        // releases what they hold (the store, the bus) before this returns.
        for task in [
            housekeeping,
            profiles,
            store_watch,
            knowledge,
            integrations_refresh,
            token_checks,
            mailbox_checks,
        ]
        .into_iter()
        .chain(ownership)
        {
            task.abort();
            let _ = task.await;
        }
        metrics_task.abort();
        let _ = metrics_task.await;
        // What the store keeps for a later write (an interval sync, the
        // analytics counters) is written now.
        if let Err(e) = store_at_stop.close().await {
            tracing::warn!(error = %e, "Cannot write what the store keeps for later at shutdown");
        }
        tracing::info!("Engine stopped");
    });
    tracing::info!(%addr, %metrics_addr, "Engine started");
    Ok(RunningEngine {
        addr,
        metrics_addr,
        stop: stop_tx,
        done,
    })
}

/// Follows rebalances: the actors of revoked partitions stop; the pending
/// timers of every conversation are loaded again on assignment, so the
/// deadlines of conversations that came from another instance (perhaps one
/// that died) fire here. A timer of a conversation owned elsewhere is
/// handed to its owner through the bus when it fires.
async fn follow_ownership(
    mut changes: tokio::sync::mpsc::UnboundedReceiver<Ownership>,
    supervisor: ActorRef<SupervisorMsg>,
    store: Arc<dyn Store>,
    timers: timers::TimerHandle,
) {
    while let Some(change) = changes.recv().await {
        match change {
            Ownership::Revoked(partitions) => {
                let _ = supervisor.send_message(SupervisorMsg::Revoked(partitions));
            }
            Ownership::Assigned(_) => {
                announce_quarantines(&store, &supervisor).await;
                match store.timers().await {
                    Ok(pending) => {
                        for (id, due) in pending {
                            timers.set(Arc::from(id.as_str()), Some(due));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "Cannot load timers after a rebalance; they fire when their conversation next has an event");
                    }
                }
            }
        }
    }
}

/// Tells the supervisor which conversations the store keeps quarantined,
/// before their events arrive.
async fn announce_quarantines(store: &Arc<dyn Store>, supervisor: &ActorRef<SupervisorMsg>) {
    let read_at = std::time::Instant::now();
    match store.quarantines().await {
        // The whole list, empty too: one lifted on another instance is
        // forgotten here.
        Ok(list) => {
            let ids = list.into_iter().map(|q| q.conversation).collect();
            let _ = supervisor.send_message(SupervisorMsg::Quarantined(ids, read_at));
        }
        Err(e) => tracing::warn!(error = %e, "Cannot read quarantined conversations"),
    }
}

/// Moves bus deliveries to the supervisor, never more in flight than the
/// semaphore allows.
async fn consume(
    mut deliveries: tokio::sync::mpsc::Receiver<crate::bus::Delivery>,
    supervisor: ActorRef<SupervisorMsg>,
    inflight: Arc<Semaphore>,
    intake: Arc<Intake>,
) {
    loop {
        let Some(d) = deliveries.recv().await else {
            return;
        };
        intake.waiting(d.event.received_at_ms);
        let Ok(permit) = inflight.acquire().await else {
            return;
        };
        permit.forget();
        let sent = supervisor.send_message(SupervisorMsg::Deliver(Box::new(d)));
        // While more wait in the queue, the one just handed over stands for
        // them (they were received after it) until the next is taken.
        if deliveries.is_empty() {
            intake.handed();
        }
        if sent.is_err() {
            return;
        }
    }
}

async fn drain(supervisor: &ActorRef<SupervisorMsg>, grace: Duration) {
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        match ractor::call!(supervisor, SupervisorMsg::Stats) {
            Ok((0, _)) | Err(_) => return,
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    tracing::warn!("Shutdown grace passed with events in flight; they will be replayed");
}
