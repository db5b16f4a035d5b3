//! The issuer server: HTTP over axum/tokio, a thin shell over the issuer and the engine.
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/batches` | a binary batch (`datasets/FORMAT.md`), streamed to disk, queued; 202 + id |
//! | `GET /v1/batches/{id}` | progress and summary |
//! | `GET /v1/batches/{id}/verdicts` | per-record verdicts (JSON lines), streamed |
//! | `POST /v1/deposits` | one deposit (JSON, hex message), settled with others arriving together |
//! | `POST /v1/withdraw` | blinded coins for an account (bearer account token) |
//! | `POST /v1/swap` | split / merge (authorised by the inputs' owner signatures) |
//! | `POST /v1/allowance` | allowance tokens (authorised by the wallet's signature) |
//! | `POST /v1/wallets` | register a wallet address under an identity (issuer admin token) |
//! | `GET /v1/keys` | keysets with their windows and phase now |
//! | `GET /v1/policy` | the policy (JSON) |
//! | `GET /metrics` | Prometheus text |
//! | `GET /healthz` | liveness |
//!
//! Bounds: every body has a size limit; deposit and batch queues are bounded and answer
//! 503 / 429 with `Retry-After` when full. CPU and disk work runs off the async threads.

pub mod batches;
mod deposits;
pub mod error;
pub mod listen;
mod telemetry;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncWriteExt;

pub use batches::{BatchStatus, BATCH_QUEUE_MAX};
pub use deposits::{DEPOSIT_GROUP_MAX, DEPOSIT_QUEUE_MAX};
use error::ApiError;

use crate::issuer::{Issuer, IssuerApi};
use crate::protocol::allowance::AllowanceRequest;
use crate::protocol::credential::{CredentialRequest, Registration};
use crate::protocol::deposit::{AccountName, BlindedOutput, Deposit, SwapRequest};
use crate::protocol::encoding::{Decode, Reader};

/// Every route the router serves, as (method, path template). `docs/openapi.yaml` must
/// document each (a test checks both that they are served and that they are documented).
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/batches"),
    ("GET", "/v1/batches/{id}"),
    ("GET", "/v1/batches/{id}/verdicts"),
    ("POST", "/v1/deposits"),
    ("POST", "/v1/withdraw"),
    ("POST", "/v1/swap"),
    ("POST", "/v1/allowance"),
    ("POST", "/v1/wallets"),
    ("POST", "/v1/register"),
    ("GET", "/v1/keys"),
    ("GET", "/v1/policy"),
    ("GET", "/metrics"),
    ("GET", "/healthz"),
];

/// Largest JSON request body.
pub const JSON_BODY_MAX: usize = 1 << 20;
/// Largest uploaded batch.
pub const BATCH_BODY_MAX: u64 = 8 << 30;

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Listen address.
    pub addr: SocketAddr,
    /// Issuer directory (keys, state, spent set, uploaded batches).
    pub store: PathBuf,
    /// Bearer token of the issuer's back office (wallet registration); `None` disables
    /// registration over HTTP.
    pub admin_token: Option<String>,
    /// Records per clearing chunk (one fsync each).
    pub chunk_records: usize,
    /// Capacity of the single-deposit queue.
    pub deposit_queue: usize,
    /// Connection limits and timeouts.
    pub limits: listen::ConnLimits,
    /// The clock requests are judged by.
    pub clock: Clock,
    /// Quota, disk reserve and retention of uploaded batches.
    pub storage: batches::StorageLimits,
}

/// The server's clock: the wall clock, or a fixed time (`serve --now`, for demos and tests:
/// keyset windows and allowance days are judged against it everywhere).
#[derive(Clone, Copy, Debug, Default)]
pub struct Clock(pub Option<u64>);

impl Clock {
    /// Unix seconds now.
    pub fn now(self) -> u64 {
        self.0.unwrap_or_else(crate::unix_now)
    }
}

#[derive(Clone)]
struct AppState {
    clock: Clock,
    issuer: Arc<Issuer>,
    batches: Arc<batches::Batches>,
    deposits: tokio::sync::mpsc::Sender<deposits::Job>,
    metrics: Option<PrometheusHandle>,
    admin_token: Option<Arc<str>>,
}

/// Installs the Prometheus recorder once per process (tests start several servers).
/// Tunables of the router.
#[derive(Clone, Debug)]
pub struct RouterOptions {
    /// Back-office token for wallet registration (`None`: registration disabled).
    pub admin_token: Option<String>,
    /// Records per clearing chunk.
    pub chunk_records: usize,
    /// Capacity of the single-deposit queue (503 beyond it).
    pub deposit_queue: usize,
    /// A request body that sends nothing this long is cut.
    pub body_idle_timeout: std::time::Duration,
    /// The clock requests are judged by.
    pub clock: Clock,
    /// Quota, disk reserve and retention of uploaded batches.
    pub storage: batches::StorageLimits,
}

impl Default for RouterOptions {
    fn default() -> Self {
        RouterOptions {
            admin_token: None,
            chunk_records: crate::engine::pipeline::CHUNK_RECORDS_DEFAULT,
            deposit_queue: DEPOSIT_QUEUE_MAX,
            body_idle_timeout: listen::BODY_IDLE_TIMEOUT_DEFAULT,
            clock: Clock::default(),
            storage: batches::StorageLimits::default(),
        }
    }
}

/// The router over an opened issuer.
pub fn router(
    issuer: Arc<Issuer>,
    store: &std::path::Path,
    options: RouterOptions,
) -> std::io::Result<(Router, Arc<AtomicStop>)> {
    let RouterOptions {
        admin_token,
        chunk_records,
        deposit_queue,
        body_idle_timeout,
        clock,
        storage,
    } = options;
    let batches = batches::Batches::start(issuer.clone(), store, chunk_records, clock, storage)?;
    let stop = Arc::new(AtomicStop(batches.clone()));
    let state = AppState {
        deposits: deposits::start(issuer.clone(), deposit_queue, clock)?,
        clock,
        issuer,
        batches,
        metrics: telemetry::recorder(),
        admin_token: admin_token.map(Arc::from),
    };
    let json_routes = Router::new()
        .route("/v1/deposits", post(post_deposit))
        .route("/v1/withdraw", post(post_withdraw))
        .route("/v1/swap", post(post_swap))
        .route("/v1/allowance", post(post_allowance))
        .route("/v1/wallets", post(post_wallet))
        .route("/v1/register", post(post_register))
        .layer(DefaultBodyLimit::max(JSON_BODY_MAX));
    let router = Router::new()
        .route(
            "/v1/batches",
            post(post_batch).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/batches/{id}", get(get_batch))
        .route("/v1/batches/{id}/verdicts", get(get_verdicts))
        .route("/v1/keys", get(get_keys))
        .route(
            "/v1/policy",
            get(|State(s): State<AppState>| async move { Json(s.issuer.policy().clone()) }),
        )
        .route("/metrics", get(get_metrics))
        .route("/healthz", get(|| async { "ok" }))
        .merge(json_routes)
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such route (docs/api.md)",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route (docs/api.md)",
            )
        })
        .layer(axum::middleware::from_fn(telemetry::track_requests))
        // A body that stalls is cut: an upload trickling nothing holds no task forever.
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            body_idle_timeout,
        ))
        .with_state(state);
    Ok((router, stop))
}

/// Stops the batch worker after its current chunk (graceful shutdown).
pub struct AtomicStop(Arc<batches::Batches>);

impl AtomicStop {
    /// Requests the stop: the running batch stops after its current chunk.
    pub fn stop(&self) {
        self.0
            .stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Stops the batch worker and waits for it (blocking).
    pub fn join(&self) {
        self.0.shut_down();
    }
}

/// Runs the server until SIGTERM or Ctrl-C.
pub async fn serve(config: ServerConfig) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let issuer = Arc::new(Issuer::open(&config.store)?);
    let options = RouterOptions {
        admin_token: config.admin_token.clone(),
        chunk_records: config.chunk_records,
        deposit_queue: config.deposit_queue,
        body_idle_timeout: config.limits.body_idle_timeout,
        clock: config.clock,
        storage: config.storage,
    };
    let (router, stop) = router(issuer, &config.store, options)?;
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving");
    let stopping = stop.clone();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let signal = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
        tracing::info!("shutting down: no new requests; the running batch stops after its chunk");
        stopping.stop();
    };
    // In-flight requests get SHUTDOWN_GRACE to finish; a client that never finishes its
    // upload does not hold the shutdown (its partial file is removed).
    listen::serve(listener, router, config.limits, signal, SHUTDOWN_GRACE).await;
    let worker = stop.clone();
    tokio::task::spawn_blocking(move || worker.join()).await?;
    Ok(())
}

/// How long in-flight requests may take after SIGTERM.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// A body that is not the expected JSON: 413 when over the limit, otherwise 400 with the
/// parser's message (which names the field).
fn json_error(e: axum::extract::rejection::JsonRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.body_text())
    } else {
        ApiError::bad_request("bad_json", e.body_text())
    }
}

fn hex_message<T: Decode>(field: &'static str, hex_text: &str) -> Result<T, ApiError> {
    let bytes = hex::decode(hex_text)
        .map_err(|e| ApiError::bad_request("bad_field", format!("{field}: not hex: {e}")))?;
    T::from_bytes(&bytes).map_err(|e| ApiError::bad_request("bad_field", format!("{field}: {e}")))
}

/// `{"signatures": [hex of each compressed G1 point]}`, the answer of every signing route.
fn signatures_json(sigs: &[microcash_kernels::bls::G1Affine]) -> Json<serde_json::Value> {
    Json(
        json!({ "signatures": sigs.iter().map(|s| hex::encode(s.to_compressed())).collect::<Vec<_>>() }),
    )
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DepositBody {
    /// Hex of the deposit message.
    deposit: String,
}

async fn post_deposit(
    State(s): State<AppState>,
    body: Result<Json<DepositBody>, axum::extract::rejection::JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body.map_err(json_error)?;
    let deposit: Deposit = hex_message("deposit", &body.deposit)?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    s.deposits
        .try_send(deposits::Job { deposit, reply })
        .map_err(|_| {
            ApiError::busy(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "deposit queue full",
                1,
            )
        })?;
    let verdict = answer
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let status = if verdict.is_accepted() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((
        status,
        Json(json!({ "verdict": verdict.code(), "detail": verdict })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WithdrawBody {
    account: String,
    /// Hex of each blinded output (keyset id ‖ compressed B).
    outputs: Vec<String>,
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is
/// case-insensitive, RFC 9110 §11.1).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

async fn post_withdraw(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<WithdrawBody>, axum::extract::rejection::JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let now = s.clock.now();
    // Who is asking comes before what is asked: no token, no body parsing.
    let token = bearer(&headers)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Authorization: Bearer <account token> required",
            )
        })?
        .to_owned();
    let Json(body) = body.map_err(json_error)?;
    let account = AccountName::new(&body.account)
        .ok_or_else(|| ApiError::bad_request("bad_field", "account: invalid name"))?;
    if body.outputs.len() > crate::protocol::deposit::OUTPUTS_MAX {
        return Err(ApiError::bad_request("bad_field", "outputs: too many"));
    }
    let outputs = body
        .outputs
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let bytes = hex::decode(h).map_err(|_| {
                ApiError::bad_request("bad_field", format!("outputs[{i}]: not hex"))
            })?;
            let mut r = Reader::new(&bytes);
            let o = BlindedOutput::decode(&mut r).and_then(|o| r.finish().map(|_| o));
            o.map_err(|e| ApiError::bad_request("bad_field", format!("outputs[{i}]: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let issuer = s.issuer.clone();
    let sigs = blocking(move || {
        if !issuer
            .engine()
            .accounts()
            .account_token_matches(account.as_str(), &token)
            .map_err(ApiError::internal)?
        {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "bad account token",
            ));
        }
        Ok(issuer.withdraw(&account, &outputs, now)?)
    })
    .await?;
    Ok(signatures_json(&sigs))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageBody {
    /// Hex of the protocol message.
    request: String,
}

async fn post_swap(
    State(s): State<AppState>,
    body: Result<Json<MessageBody>, axum::extract::rejection::JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body.map_err(json_error)?;
    let request: SwapRequest = hex_message("request", &body.request)?;
    let issuer = s.issuer.clone();
    let now = s.clock.now();
    let sigs = blocking(move || Ok(issuer.swap(&request, now)?)).await?;
    Ok(signatures_json(&sigs))
}

/// v1: blind allowance tokens (`AllowanceRequest`, version byte 1) → signatures. v2: a
/// credential (`CredentialRequest`, version byte 2) → `{"key", "credential"}`.
async fn post_allowance(
    State(s): State<AppState>,
    body: Result<Json<MessageBody>, axum::extract::rejection::JsonRejection>,
) -> Result<axum::response::Response, ApiError> {
    let Json(body) = body.map_err(json_error)?;
    let issuer = s.issuer.clone();
    let now = s.clock.now();
    // The version byte tells the schemes apart (v1 requests start with 1, v2 with 2).
    let bytes = hex::decode(&body.request)
        .map_err(|e| ApiError::bad_request("bad_field", format!("request: not hex: {e}")))?;
    let decoded = |e: crate::protocol::encoding::DecodeError| {
        ApiError::bad_request("bad_field", format!("request: {e}"))
    };
    if bytes.first() == Some(&crate::protocol::credential::request::V2_MESSAGE_VERSION) {
        let request = CredentialRequest::from_bytes(&bytes).map_err(decoded)?;
        let (key, issue) = blocking(move || Ok(issuer.issue_credential(&request, now)?)).await?;
        return Ok(Json(json!({
            "key": hex::encode(key.id),
            "credential": hex::encode(crate::protocol::encoding::Encode::to_bytes(&issue)),
        }))
        .into_response());
    }
    let request = AllowanceRequest::from_bytes(&bytes).map_err(decoded)?;
    let sigs = blocking(move || Ok(issuer.issue_allowance(&request, now)?)).await?;
    Ok(signatures_json(&sigs).into_response())
}

/// The admin token's check, shared by the registration routes.
fn require_admin(s: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(admin) = s.admin_token.as_deref() else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "disabled",
            "wallet registration over HTTP is disabled on this server",
        ));
    };
    if !bearer(headers).is_some_and(|t| crate::store::state::tokens_match(t, admin)) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "issuer admin token required",
        ));
    }
    Ok(())
}

/// Allowance v2 registration: the wallet's signed `Registration` (possession of its
/// secret), the identity attested by the back office's admin token.
async fn post_register(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<MessageBody>, axum::extract::rejection::JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    require_admin(&s, &headers)?;
    let Json(body) = body.map_err(json_error)?;
    let registration: Registration = hex_message("request", &body.request)?;
    let address = crate::protocol::stealth::Address(registration.address);
    let issuer = s.issuer.clone();
    let revoked = blocking(move || Ok(issuer.register_v2(&registration)?)).await?;
    Ok(Json(json!({
        "registered": address.to_string(),
        "revoked": revoked.map(|a| a.to_string()),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WalletBody {
    /// The wallet's address (mc1…).
    address: String,
    /// The identity the issuer verified out of band.
    identity: String,
}

async fn post_wallet(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<WalletBody>, axum::extract::rejection::JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    require_admin(&s, &headers)?;
    let Json(body) = body.map_err(json_error)?;
    let address: crate::protocol::stealth::Address = body
        .address
        .parse()
        .map_err(|e| ApiError::bad_request("bad_field", format!("address: {e}")))?;
    if body.identity.is_empty() || body.identity.chars().count() > 256 {
        return Err(ApiError::bad_request(
            "bad_field",
            "identity: 1-256 characters",
        ));
    }
    let issuer = s.issuer.clone();
    blocking(move || Ok(issuer.register_wallet(&address, &body.identity)?)).await?;
    Ok(Json(json!({ "registered": address.to_string() })))
}

async fn get_keys(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let now = s.clock.now();
    let keysets: Vec<serde_json::Value> = s
        .issuer
        .keysets()
        .iter()
        .filter(|k| {
            !matches!(
                k.windows.phase(now),
                crate::protocol::keyset::KeysetPhase::Expired
            )
        })
        .map(|k| {
            let mut v = serde_json::to_value(crate::protocol::keyset::KeysetJson::from(k))?;
            if let Some(fields) = v.as_object_mut() {
                let phase = format!("{:?}", k.windows.phase(now)).to_lowercase();
                fields.insert("phase".into(), json!(phase));
            }
            Ok(v)
        })
        .collect::<Result<_, serde_json::Error>>()
        .map_err(ApiError::internal)?;
    let credential_keys: Vec<crate::store::files::CredentialKeyJson> = s
        .issuer
        .keys()
        .credentials
        .iter()
        .map(crate::store::files::CredentialKeyJson::from)
        .collect();
    Ok(Json(
        json!({ "keysets": keysets, "credential_keys": credential_keys }),
    ))
}

async fn get_metrics(State(s): State<AppState>) -> impl IntoResponse {
    telemetry::sample_process();
    match s.metrics {
        Some(h) => (StatusCode::OK, h.render() + &telemetry::process_cpu_text()),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed".to_owned(),
        ),
    }
}

/// The clearing partner a request's `Authorization: Bearer <upload token>` names.
async fn partner(s: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let unauthenticated = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Authorization: Bearer <clearing-partner token> required",
        )
    };
    let token = bearer(headers).ok_or_else(unauthenticated)?.to_owned();
    let issuer = s.issuer.clone();
    blocking(move || {
        issuer
            .engine()
            .accounts()
            .partner_of(&token)
            .map_err(ApiError::internal)
    })
    .await?
    .ok_or_else(unauthenticated)
}

/// The batch, if it exists and belongs to the asking partner (another partner's batches
/// are not found: their ids reveal nothing).
/// Who is asking comes first: without a partner's token the id is not even looked at.
async fn own_batch(
    s: &AppState,
    headers: &HeaderMap,
    path: Result<UrlPath<String>, PathRejection>,
) -> Result<String, ApiError> {
    let who = partner(s, headers).await?;
    let id = batch_path(path)?;
    if s.batches.get(&id).is_none() || s.batches.partner(&id).as_deref() != Some(who.as_str()) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no batch {id}"),
        ));
    }
    Ok(id)
}

async fn post_batch(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    // Refusals that need no body come before any byte of it is read: who is asking first.
    let uploader = partner(&s, &headers).await?;
    let announced = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > BATCH_BODY_MAX) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("batch above {BATCH_BODY_MAX} bytes"),
        ));
    }
    if !s.batches.has_room() {
        return Err(queue_full());
    }
    let batches = s.batches.clone();
    let who = uploader.clone();
    let mut charge = tokio::task::spawn_blocking(move || batches.admit(&who, announced))
        .await
        .map_err(ApiError::internal)?
        .map_err(storage_refusal)?;
    let mut raw = [0u8; 16];
    rand_core::Rng::fill_bytes(&mut crate::os_rng(), &mut raw);
    let id = hex::encode(raw);
    let part = s.batches.partial_path(&id);
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&part)
        .await
        .map_err(ApiError::internal)?;
    // Every upload that does not complete leaves nothing behind: errors, refusals, and a
    // client that goes away (the handler is dropped mid-stream) alike.
    let mut guard = PartialUpload(Some(part.clone()));
    let written = receive_upload(&mut file, body, &mut charge).await?;
    drop(file);
    // The header must be usable; records are judged one by one when clearing.
    if let Err(e) = crate::engine::batch_file::BatchReader::open(&part) {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(ApiError::bad_request("bad_batch", e.to_string()));
    }
    tokio::fs::write(s.batches.partner_path(&id), uploader.as_bytes())
        .await
        .map_err(ApiError::internal)?;
    tokio::fs::rename(&part, s.batches.batch_path(&id))
        .await
        .map_err(ApiError::internal)?;
    guard.0 = None;
    if s.batches.enqueue(id.clone()).is_err() {
        let _ = tokio::fs::remove_file(s.batches.batch_path(&id)).await;
        let _ = tokio::fs::remove_file(s.batches.partner_path(&id)).await;
        return Err(queue_full());
    }
    metrics::counter!("microcash_batches_received_total").increment(1);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "bytes": written })),
    ))
}

/// Removes an upload's partial file when dropped, unless the upload completed.
struct PartialUpload(Option<PathBuf>);

impl Drop for PartialUpload {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn queue_full() -> ApiError {
    ApiError::busy(
        StatusCode::TOO_MANY_REQUESTS,
        "busy",
        format!("{BATCH_QUEUE_MAX} batches already queued"),
        30,
    )
}

/// An upload the partner's quota or the disk reserve does not allow.
fn storage_refusal(e: batches::StorageRefusal) -> ApiError {
    match e {
        batches::StorageRefusal::Quota { .. } => {
            ApiError::new(StatusCode::FORBIDDEN, "quota_exceeded", e.to_string())
        }
        batches::StorageRefusal::Disk { .. } => ApiError::busy(
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient_storage",
            e.to_string(),
            60,
        ),
        batches::StorageRefusal::Io(e) => ApiError::internal(e),
    }
}

/// Streams an upload's body into `file` (bounded by [`BATCH_BODY_MAX`], the partner's
/// quota and the disk reserve) and syncs it.
async fn receive_upload(
    file: &mut tokio::fs::File,
    body: Body,
    charge: &mut batches::UploadCharge,
) -> Result<u64, ApiError> {
    let mut stream = body.into_data_stream();
    let mut written = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request("bad_body", e.to_string()))?;
        written += chunk.len() as u64;
        charge.charge(chunk.len() as u64).map_err(storage_refusal)?;
        if written > BATCH_BODY_MAX {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("batch above {BATCH_BODY_MAX} bytes"),
            ));
        }
        file.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    file.sync_all().await.map_err(ApiError::internal)?;
    Ok(written)
}

/// The batch id of a `/v1/batches/{id}` path; a segment that does not even decode (say a
/// percent-escape that is not UTF-8) is the same client error as a malformed id.
fn batch_path(path: Result<UrlPath<String>, PathRejection>) -> Result<String, ApiError> {
    let UrlPath(id) = path.map_err(|e| {
        ApiError::bad_request(
            "bad_field",
            format!("id: 32 lower-case hex digits expected ({})", e.body_text()),
        )
    })?;
    batch_id(&id)?;
    Ok(id)
}

fn batch_id(id: &str) -> Result<(), ApiError> {
    // Ids are what `hex::encode` gave out: lower case only, so one batch has one name.
    if id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "bad_field",
            "id: 32 lower-case hex digits expected",
        ))
    }
}

async fn get_batch(
    State(s): State<AppState>,
    headers: HeaderMap,
    path: Result<UrlPath<String>, PathRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let id = own_batch(&s, &headers, path).await?;
    s.batches
        .get(&id)
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no batch {id}")))
}

async fn get_verdicts(
    State(s): State<AppState>,
    headers: HeaderMap,
    path: Result<UrlPath<String>, PathRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let id = own_batch(&s, &headers, path).await?;
    let file = tokio::fs::File::open(s.batches.verdicts_path(&id))
        .await
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no verdicts yet"))?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        body,
    ))
}
