//! The JSON routes, driven in-process through the real router on a sample store: the first
//! byte picks the route, the rest is the body (or the batch id). Whatever arrives, the
//! answer is a 2xx, or a 4xx with a JSON body naming an error code or a deposit verdict —
//! never a 5xx, never a panic.
#![no_main]
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Method, Request};
use libfuzzer_sys::fuzz_target;
use microcash::issuer::Issuer;
use tower::ServiceExt;

const ACCOUNT_TOKEN: &str = "mca_fuzz_account";
const ADMIN_TOKEN: &str = "fuzz-admin";

struct Harness {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    _dir: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = dir.path().join("store");
        microcash::dataset::init_store_from_params(
            &microcash_fuzz::samples().join("mixed.params"),
            &store,
        )
        .expect("sample store");
        let issuer = Arc::new(Issuer::open(&store).expect("open store"));
        issuer
            .engine()
            .accounts()
            .set_account_token("merchant-0000", ACCOUNT_TOKEN)
            .expect("account token");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let router = rt.block_on(async {
            let options = microcash::server::RouterOptions {
                admin_token: Some(ADMIN_TOKEN.into()),
                clock: microcash::server::Clock(Some(microcash_fuzz::sample_day().now)),
                ..Default::default()
            };
            microcash::server::router(issuer, &store, options)
                .expect("router")
                .0
        });
        Harness {
            rt,
            router,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&route, rest)) = data.split_first() else {
        return;
    };
    let (method, uri, token) = match route % 8 {
        0 => (Method::POST, "/v1/deposits".to_owned(), None),
        1 => (Method::POST, "/v1/withdraw".to_owned(), Some(ACCOUNT_TOKEN)),
        2 => (Method::POST, "/v1/swap".to_owned(), None),
        3 => (Method::POST, "/v1/allowance".to_owned(), None),
        4 => (Method::POST, "/v1/wallets".to_owned(), Some(ADMIN_TOKEN)),
        7 => (Method::POST, "/v1/register".to_owned(), Some(ADMIN_TOKEN)),
        n => {
            let Ok(id) = std::str::from_utf8(rest) else {
                return;
            };
            let tail = if n == 5 { "" } else { "/verdicts" };
            (Method::GET, format!("/v1/batches/{id}{tail}"), None)
        }
    };
    let mut request = Request::builder().method(method).uri(uri.as_str());
    if let Some(t) = token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    let body = if matches!(route % 8, 5 | 6) {
        Vec::new()
    } else {
        rest.to_vec()
    };
    let Ok(request) = request
        .header("content-type", "application/json")
        .body(Body::from(body))
    else {
        return; // not a URI a client could send
    };
    let h = harness();
    let (status, bytes) = h.rt.block_on(async {
        let response = h.router.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, bytes)
    });
    assert!(
        !status.is_server_error(),
        "{uri}: {status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    if status.is_client_error() {
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{uri}: {status}: not a JSON error body ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert!(
            v["error"]["code"].is_string() || v["verdict"].is_string(),
            "{uri}: {v}"
        );
    }
});
