//! Drop-in replacements for axum's `Json`, `Query` and `Path` extractors whose
//! rejections are problem+json with stable codes instead of plain text.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// JSON body extractor (and responder) whose rejections are problem+json.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes = axum::body::Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|e| json_rejection(JsonRejection::BytesRejection(e)))?;
        let starts_as_object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        match axum::Json::<T>::from_request(req, state).await {
            // Every body this platform takes is a JSON object; serde would also read a
            // struct from an array of its fields in order, which no document allows.
            Ok(_) if !starts_as_object => {
                Err(ApiError::unprocessable("invalid-body", "The body must be a JSON object."))
            }
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "The request body must be JSON sent with `Content-Type: application/json`.",
        ),
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::bad_request("malformed-json", format!("The body is not valid JSON: {}", source_text(&e)))
        }
        JsonRejection::JsonDataError(e) => ApiError::unprocessable(
            "invalid-body",
            format!("The body does not match the expected shape: {}", source_text(&e)),
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => body_too_large(),
        other => ApiError::bad_request(
            "unreadable-body",
            format!("The request body could not be read: {}", other.body_text()),
        ),
    }
}

pub(crate) fn body_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        "The request body exceeds the size this endpoint accepts.",
    )
}

/// serde_json's message without axum's prefix, e.g. "missing field `email` at line 1 column 2".
fn source_text(err: &dyn std::error::Error) -> String {
    let mut inner: &dyn std::error::Error = err;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

/// Query-string extractor whose rejections are problem+json.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(ApiError::bad_request("invalid-query", format!("The query string is invalid: {}", source_text(&e))))
            }
            Err(other) => Err(ApiError::bad_request("invalid-query", other.body_text())),
        }
    }
}

/// Path-parameter extractor whose rejections are problem+json.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                Err(ApiError::bad_request("invalid-path", format!("A path parameter is invalid: {}", e.body_text())))
            }
            Err(other) => Err(ApiError::internal(anyhow::anyhow!("path extraction: {}", other.body_text()))),
        }
    }
}
