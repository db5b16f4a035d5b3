//! API errors: JSON `{"error": {"code": …, "message": …}}` with a stable code per kind.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable message naming the field or record.
    pub message: String,
    /// Seconds to wait before retrying (429 / 503).
    pub retry_after: Option<u32>,
}

impl ApiError {
    /// 400 with a code and message.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    /// Any status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    /// 429/503 with Retry-After.
    pub fn busy(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
        retry_after: u32,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: Some(retry_after),
        }
    }
    /// 500 for a storage or internal failure (the message is logged, not leaked in detail).
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        metrics::counter!("microcash_http_errors_total", "code" => self.code).increment(1);
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

impl From<crate::issuer::IssuerError> for ApiError {
    fn from(e: crate::issuer::IssuerError) -> ApiError {
        use crate::issuer::IssuerError as E;
        let (status, code) = match &e {
            E::Rejected(_) | E::SwapInputRejected { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "rejected")
            }
            E::Refused(_) | E::SwapPartiallyReplayed => (StatusCode::CONFLICT, "refused"),
            E::UnknownAccount(_) => (StatusCode::NOT_FOUND, "unknown_account"),
            E::AccountExists(_) | E::WalletAlreadyRegistered(_) => (StatusCode::CONFLICT, "exists"),
            E::InsufficientFunds { .. } => (StatusCode::PAYMENT_REQUIRED, "insufficient_funds"),
            E::AllowanceCapExceeded { .. } => (StatusCode::FORBIDDEN, "allowance_cap_exceeded"),
            E::WalletNotRegistered(_) | E::BadRequestSignature => {
                (StatusCode::UNAUTHORIZED, "unauthenticated")
            }
            E::Store(_) | E::Files(_) | E::Engine(_) | E::SpentSet(_) => {
                return ApiError::internal(e)
            }
            _ => (StatusCode::BAD_REQUEST, "bad_request"),
        };
        ApiError::new(status, code, e.to_string())
    }
}
