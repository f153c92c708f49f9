//! Serving the gateway beside a run (`[gateway]` in a pipeline) or alone
//! (`pulse serve`), on a tokio runtime of its own so that HTTP never runs on a
//! timely worker thread.

use std::net::SocketAddr;
use std::time::Duration;

use pulse_core::ingest::IngestQueue;
use pulse_gateway::{DemoLogin, Gateway, GatewayConfig, GatewayError, LiveServices, Readiness};
use tokio::sync::oneshot;

/// How long in-flight requests may take to finish once the gateway stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Tells the person at the terminal where to point a browser and, for a demo,
/// how to log in. On stderr: stdout belongs to the pipeline's output.
fn announce(address: SocketAddr, dashboard: bool, demo: Option<&DemoLogin>) {
    if dashboard {
        eprintln!("pulse: live dashboard on http://{address}/ (API docs at /docs)");
    } else {
        eprintln!("pulse: gateway on http://{address}/ (API docs at /docs)");
    }
    if let Some(demo) = demo {
        match &demo.generated_password {
            Some(password) => eprintln!(
                "pulse: demo login: user {:?}, password {password:?} (tenant {:?}; set PULSE_DEMO_PASSWORD to choose the password)",
                demo.username, demo.tenant
            ),
            None => eprintln!(
                "pulse: demo login: user {:?} with the configured password (tenant {:?})",
                demo.username, demo.tenant
            ),
        }
    }
}

/// A running gateway.
pub struct GatewayServer {
    runtime: tokio::runtime::Runtime,
    gateway: Gateway,
    readiness: Readiness,
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<Result<(), GatewayError>>>,
}

impl GatewayServer {
    /// Opens the gateway's store, binds `config.listen` and starts serving,
    /// with `live` behind `/ws`, the query API and `/api/v1/stats` if given.
    /// Readiness stays false until [`Readiness::set_pipeline_ready`].
    pub fn start(config: GatewayConfig, live: Option<LiveServices>) -> Result<Self, GatewayError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("pulse-gateway")
            .enable_all()
            .build()?;
        let (gateway, listener) = runtime.block_on(async {
            // The address first: a second demo started beside a running one
            // should hear that its port is taken, not that its store is locked.
            let listener = pulse_gateway::bind(config.listen).await?;
            let gateway = Gateway::open(config.clone()).await?;
            Ok::<_, GatewayError>((gateway, listener))
        })?;
        let dashboard = live.is_some();
        if let Some(live) = live {
            gateway.attach_live(live)?;
        }
        let address = listener.local_addr()?;
        announce(address, dashboard, gateway.demo_login());
        let readiness = gateway.readiness();
        let (stop, stopped) = oneshot::channel::<()>();
        let served = runtime.spawn(pulse_gateway::serve(listener, gateway.router(), async move {
            let _ = stopped.await;
        }));
        Ok(Self {
            runtime,
            gateway,
            readiness,
            address,
            stop: Some(stop),
            served: Some(served),
        })
    }

    /// The readiness `/health/ready` reports.
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// Hands `POST /api/v1/events` the queue of the pipeline's `http` source.
    pub fn attach_ingest(&self, queue: IngestQueue) -> Result<(), GatewayError> {
        self.gateway.attach_ingest(queue)
    }

    /// Hands the `/api/v1/ml/*` routes the model registry.
    pub fn attach_models(&self, models: std::sync::Arc<dyn pulse_gateway::ModelService>) -> Result<(), GatewayError> {
        self.gateway.attach_models(models)
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Reports not-ready, lets requests in flight finish (up to a few
    /// seconds), and stops.
    pub fn stop(mut self) {
        self.readiness.set_shutting_down();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            let finished = self
                .runtime
                .block_on(async { tokio::time::timeout(DRAIN_TIMEOUT, served).await });
            match finished {
                Ok(Ok(Err(error))) => tracing::error!(%error, "the gateway failed"),
                Ok(Err(error)) => tracing::error!(%error, "the gateway task failed"),
                Err(_) => tracing::warn!("requests still in flight after {DRAIN_TIMEOUT:?}; closing"),
                Ok(Ok(Ok(()))) => {}
            }
        }
    }
}
