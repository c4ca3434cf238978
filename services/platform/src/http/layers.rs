//! Protective middleware: reject oversize bodies before reading them, bound in-flight
//! work with fast 429s instead of growing queues, and cut requests that run too long.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::extract::body_too_large;
use crate::ApiError;

#[derive(Clone)]
pub(crate) struct Limits {
    pub in_flight: Arc<Semaphore>,
    pub max_body_bytes: usize,
    pub max_upload_bytes: usize,
    pub timeout: Duration,
}

/// Sheds load when the in-flight bound is reached, refuses declared oversize bodies and
/// enforces the request timeout, in that order.
pub(crate) async fn protect(State(limits): State<Limits>, req: Request, next: Next) -> Response {
    let Ok(_permit) = limits.in_flight.clone().try_acquire_owned() else {
        metrics::counter!("http_requests_shed_total").increment(1);
        return ApiError::too_many_requests("overloaded", "The service is at capacity; retry shortly.", 1)
            .into_response();
    };
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    // Uploads (multipart) may be larger; each upload route bounds its own body below this.
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
    let max = if multipart { limits.max_upload_bytes.max(limits.max_body_bytes) } else { limits.max_body_bytes };
    if declared.is_some_and(|len| len > max) {
        return body_too_large().into_response();
    }
    match tokio::time::timeout(limits.timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "The request took longer than the service allows; it may be retried.",
        )
        .retry_after(1)
        .into_response(),
    }
}

/// The answer to a request whose handler panicked.
pub(crate) fn panicked(cause: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = cause
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| cause.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    metrics::counter!("http_handler_panics_total").increment(1);
    ApiError::internal(anyhow::anyhow!("handler panicked: {what}")).into_response()
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("not-found", "No resource at this path.")
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "This path does not accept that method.")
}
