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
        use crate::issuer::{IssuerError, Misuse as M, RequestRefusal as R};
        let (status, code) = match &e {
            IssuerError::Refused(r) => match r {
                R::Rejected(_) | R::SwapInputRejected { .. } => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "rejected")
                }
                R::Settlement(_) | R::SwapPartiallyReplayed => (StatusCode::CONFLICT, "refused"),
                R::UnknownAccount(_) => (StatusCode::NOT_FOUND, "unknown_account"),
                R::WalletAlreadyRegistered(_) => (StatusCode::CONFLICT, "exists"),
                R::InsufficientFunds { .. } => (StatusCode::PAYMENT_REQUIRED, "insufficient_funds"),
                R::AllowanceCapExceeded { .. } => (StatusCode::FORBIDDEN, "allowance_cap_exceeded"),
                R::WalletNotRegistered(_) | R::BadRequestSignature => {
                    (StatusCode::UNAUTHORIZED, "unauthenticated")
                }
                R::BalanceOverflow { .. } => (StatusCode::CONFLICT, "refused"),
                _ => (StatusCode::BAD_REQUEST, "bad_request"),
            },
            IssuerError::Misuse(M::AccountExists(_)) => (StatusCode::CONFLICT, "exists"),
            IssuerError::Misuse(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            // The issuer's own failure: never a verdict about the request, never detailed.
            IssuerError::Storage(_) => return ApiError::internal(e),
        };
        ApiError::new(status, code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuer::{IssuerError, Misuse, RequestRefusal, StorageFault};

    /// The issuer's storage failures answer 500 `internal` (never a 4xx about the request);
    /// refusals and misuse answer 4xx with their stable codes.
    #[test]
    fn issuer_errors_map_by_fault() {
        let storage = IssuerError::Storage(StorageFault::Io(std::io::Error::other("disk")));
        let a = ApiError::from(storage);
        assert_eq!(
            (a.status, a.code),
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        );
        assert!(
            !a.message.contains("disk"),
            "storage details stay in the log"
        );
        let unknown = IssuerError::Refused(RequestRefusal::UnknownAccount("x".into()));
        let a = ApiError::from(unknown);
        assert_eq!(
            (a.status, a.code),
            (StatusCode::NOT_FOUND, "unknown_account")
        );
        let exists = IssuerError::Misuse(Misuse::AccountExists("x".into()));
        assert_eq!(ApiError::from(exists).status, StatusCode::CONFLICT);
        let overflow = IssuerError::Refused(RequestRefusal::BalanceOverflow {
            account: "x".into(),
        });
        assert_eq!(ApiError::from(overflow).code, "refused");
    }
}
