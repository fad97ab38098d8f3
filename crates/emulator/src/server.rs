//! Starting and stopping the emulator, and the router that puts the areas together.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::{StatusCode, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::client::ControlClient;
use crate::control::types::{Settings, ThrottleSettings};
use crate::graph::error::GraphError;
use crate::state::AppState;
use crate::{apim, control, faults, graph, identity, observe};

#[derive(Debug, Clone, Default)]
pub struct EmulatorOptions {
    /// 0 picks a free port.
    pub port: u16,
    /// Added to every authenticated Graph request, while it holds its concurrency slot
    /// (changeable later through the control API).
    pub graph_latency: Duration,
    pub throttling: ThrottleSettings,
}

pub struct Emulator;

impl Emulator {
    /// Binds `127.0.0.1:port` and serves until [`RunningEmulator::shutdown`] or drop.
    pub async fn start(options: EmulatorOptions) -> anyhow::Result<RunningEmulator> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, options.port))
            .await
            .with_context(|| format!("binding 127.0.0.1:{}", options.port))?;
        let address = listener.local_addr()?;
        let state = AppState::new(Settings {
            throttling: options.throttling,
            graph_latency_ms: options.graph_latency.as_millis() as u64,
            ..Settings::default()
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let server = axum::serve(listener, router(state)).with_graceful_shutdown(async {
            // A dropped sender means the handle was dropped: stop as well.
            let _ = stopped.await;
        });
        let task = tokio::spawn(async move {
            if let Err(error) = server.await {
                tracing::error!(%error, "emulator server failed");
            }
        });
        tracing::info!(%address, "emulator listening");
        Ok(RunningEmulator {
            url: format!("http://{address}"),
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// Identity, Graph and the API Management gateway share one host, path-disjoint; both get ids and fault injection. The
/// control API gets neither, so faults never hit the test's own setup calls.
fn router(state: AppState) -> Router {
    Router::new()
        .merge(identity::routes())
        .merge(graph::routes())
        .merge(apim::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            faults::inject,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ))
        .nest("/_emulator", control::routes())
        .with_state(state)
}

async fn not_found(uri: Uri) -> Response {
    if graph::is_graph_path(uri.path()) {
        let segment = uri.path().rsplit('/').next().unwrap_or_default();
        return GraphError::bad_request(format!("Resource not found for the segment '{segment}'."))
            .into_response();
    }
    StatusCode::NOT_FOUND.into_response()
}

pub struct RunningEmulator {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningEmulator {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn control(&self) -> ControlClient {
        ControlClient::new(&self.url)
    }

    /// Stops accepting connections and waits for requests in flight to finish.
    pub async fn shutdown(mut self) {
        self.signal_stop();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            // The server may already be gone; then there is nothing to stop.
            let _ = stop.send(());
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        self.signal_stop();
    }
}
