//! Slipway's HTTP edge: the REST API under `/api/v1`, health, readiness and metrics.
//! [`App::build`] binds the listener (port 0 in tests); [`App::run`] serves until the
//! shared cancellation token fires, then lets in-flight requests finish.

mod auth;
mod dashboard;
mod error;
mod extract;
mod intake;
mod mcp;
mod metrics;
mod observe;
mod openapi;
pub mod relay;
mod responses;
mod routes;
mod state;
mod ws;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use slipway_store::{hash_token, Store};
use state::AppState;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;
pub use observe::REQUEST_ID_HEADER;

/// The largest request body accepted (413 beyond).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What the server needs from its caller.
pub struct ServerConfig {
    pub bind: SocketAddr,
    pub store: Store,
    pub engine: slipway_engine::Engine,
    /// The value of `SLIPWAY_ADMIN_TOKEN`, if set: accepted as an admin token.
    pub admin_token: Option<String>,
    /// `GITHUB_WEBHOOK_SECRET`, if set; without it every delivery is refused.
    pub webhook_secret: Option<String>,
    /// `SLIPWAY_METRICS_TOKEN`, if set: `/metrics` then needs it as a bearer token.
    pub metrics_token: Option<String>,
    /// `SLIPWAY_RELAY_URL` and `_TOKEN`: deliveries are pulled from the webhook relay too.
    pub relay: Option<relay::RelayConfig>,
}

pub struct App {
    listener: TcpListener,
    router: Router,
    /// The relay puller, started with the server.
    relay: Option<(AppState, relay::RelayConfig, relay::RelayStatus)>,
    /// Ends `/mcp`'s open streams at shutdown.
    mcp_stop: CancellationToken,
}

impl App {
    /// Binds the listener and assembles the routes.
    pub async fn build(config: ServerConfig) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("cannot listen on {}", config.bind))?;
        let secure_cookies = config
            .engine
            .public_url()
            .is_some_and(|url| url.starts_with("https://"));
        let state = AppState {
            store: config.store,
            engine: config.engine,
            metrics: Arc::new(metrics::Metrics::new()),
            env_admin_hash: config.admin_token.as_deref().map(hash_token),
            secure_cookies,
            webhook_secret: config.webhook_secret.map(Arc::from),
            auth_epoch: Arc::new(tokio::sync::watch::channel(0).0),
            metrics_hash: config.metrics_token.as_deref().map(hash_token),
            relay: config.relay.as_ref().map(relay::status_for),
        };
        let relay = config
            .relay
            .zip(state.relay.clone())
            .map(|(relay, status)| (state.clone(), relay, status));
        let mcp_stop = CancellationToken::new();
        Ok(Self {
            listener,
            router: router(state, mcp_stop.clone()),
            relay,
            mcp_stop,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves (and pulls from the relay) until `shutdown` is cancelled; requests in flight
    /// then are completed.
    pub async fn run(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let puller = self.relay.map(|(state, config, status)| {
            tokio::spawn(relay::pull(state, config, status, shutdown.clone()))
        });
        let mcp_stop = self.mcp_stop.clone();
        let stopping = shutdown.clone();
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(async move {
                stopping.cancelled().await;
                // Open MCP streams end, or the graceful shutdown would wait for them.
                mcp_stop.cancel();
            })
            .await;
        self.mcp_stop.cancel();
        if let Some(puller) = puller {
            shutdown.cancel();
            let _ = puller.await;
        }
        served
    }
}

fn router(state: AppState, mcp_stop: CancellationToken) -> Router {
    use axum::routing::post;
    use routes::{deliveries, hooks, notifications};
    use routes::{
        projects, pulls, runs, secrets, settings, system, tokens, validations, variables, webhooks,
    };
    let api = Router::new()
        .route("/projects", get(projects::list).post(projects::create))
        .route(
            "/projects/{id}",
            get(projects::show)
                .patch(projects::update)
                .delete(projects::delete),
        )
        .route(
            "/projects/{id}/settings",
            get(settings::show)
                .put(settings::replace)
                .patch(settings::patch),
        )
        .route("/projects/{id}/webhook", get(hooks::show))
        .route("/projects/{id}/webhook/repair", post(hooks::repair))
        .route("/deliveries/{id}", get(deliveries::show))
        .route("/deliveries/{id}/replay", post(deliveries::replay))
        .route("/projects/{id}/secrets", get(secrets::list))
        .route(
            "/projects/{id}/secrets/import",
            axum::routing::post(secrets::import),
        )
        .route(
            "/projects/{id}/secrets/{name}",
            axum::routing::put(secrets::put).delete(secrets::delete),
        )
        .route("/projects/{id}/variables", get(variables::list))
        .route("/projects/{id}/variables/import", post(variables::import))
        .route(
            "/projects/{id}/variables/{name}",
            axum::routing::put(variables::put).delete(variables::delete),
        )
        .route(
            "/projects/{id}/notifications",
            get(notifications::list).post(notifications::create),
        )
        .route(
            "/projects/{id}/notifications/{tid}",
            axum::routing::patch(notifications::update).delete(notifications::delete),
        )
        .route(
            "/projects/{id}/notifications/{tid}/test",
            post(notifications::test),
        )
        .route(
            "/projects/{id}/validations",
            get(validations::list).post(validations::start),
        )
        .route("/projects/{id}/pulls", get(pulls::list).post(pulls::open))
        .route("/projects/{id}/pulls/{number}/merge", post(pulls::merge))
        .route("/projects/{id}/pulls/{number}/close", post(pulls::close))
        .route("/projects/{id}/runs", get(runs::list).post(runs::start))
        .route("/runs/{id}", get(runs::show))
        .route("/runs/{id}/continue", post(runs::continue_run))
        .route("/runs/{id}/confirm", post(runs::confirm))
        .route("/runs/{id}/modify", post(runs::modify))
        .route("/runs/{id}/cancel", post(runs::cancel))
        .route("/validations/{id}", get(validations::show))
        .route("/validations/{id}/logs", get(validations::logs))
        .route("/validations/{id}/artifacts", get(validations::artifacts))
        .route(
            "/validations/{id}/artifacts/{name}",
            get(validations::artifact),
        )
        .route("/validations/{id}/retry", post(validations::retry))
        .route("/validations/{id}/cancel", post(validations::cancel))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route("/openapi.json", get(system::openapi));

    Router::new()
        .route("/health", get(system::health))
        .route("/ready", get(system::ready))
        .route("/metrics", get(system::metrics))
        .nest("/api/v1", api)
        .route("/ws", get(ws::ws))
        .merge(mcp::routes(&state, mcp_stop))
        .merge(
            dashboard::router().layer(axum::middleware::from_fn_with_state(
                state.clone(),
                dashboard::in_frame,
            )),
        )
        .route(
            "/webhooks/github",
            post(webhooks::github).layer(DefaultBodyLimit::max(
                slipway_forge::webhook::MAX_PAYLOAD_BYTES,
            )),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(on_panic))
        .with_state(state)
}

/// API paths: a JSON error; any other path: a page of the dashboard with a way back.
async fn not_found(
    axum::extract::State(state): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if !dashboard::is_api_path(uri.path()) {
        return dashboard::not_found(&state, &headers, uri.path()).await;
    }
    ApiError::not_found(format!(
        "no route for {}; the API is described at /api/v1/openapi.json",
        uri.path()
    ))
    .into_response()
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{method} is not allowed on {}; see /api/v1/openapi.json",
            uri.path()
        ),
    )
}

fn on_panic(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    ApiError::internal("a request handler panicked").into_response()
}
