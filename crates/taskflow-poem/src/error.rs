//! The one place where errors become HTTP answers.
//!
//! Every 4xx and 5xx body has the shape `{"error": "<message>", "status_code": <n>}`: errors from
//! `taskflow_core`, from `taskflow_auth`, and poem's own (unknown route, wrong method, a path or
//! query that does not parse, a body too large).

use poem::error::{
    MethodNotAllowedError, NotFoundError, ParsePathError as PoemParsePathError, ResponseError,
};
use poem::http::{HeaderValue, StatusCode, header};
use poem::{IntoResponse, Response};
use poem_openapi::error::{
    AuthorizationError, ContentTypeError, ParseParamError, ParsePathError, ParseRequestPayloadError,
};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiResponse, Object};
use taskflow_auth::AuthError;

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Object, serde::Deserialize)]
pub struct ErrorBody {
    /// A human-readable message. For 422 it starts with the field name and a colon.
    pub error: String,
    /// The HTTP status code, repeated.
    pub status_code: u16,
}

/// An error answer: a status, a message, and for 401 a `WWW-Authenticate` challenge.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    status: StatusCode,
    message: String,
    challenge: Option<&'static str>,
    replayed: bool,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            challenge: None,
            replayed: false,
        }
    }

    /// This error, marked as the stored answer of an earlier request with the same
    /// `Idempotency-Key` when `replayed` (the answer carries `Idempotent-Replayed: true`).
    pub fn replayed(mut self, replayed: bool) -> Self {
        self.replayed = replayed;
        self
    }

    /// 422 about `field`.
    pub fn unprocessable(field: &str, message: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{field}: {message}"),
        )
    }

    /// 401 `Not authenticated`: no token was given.
    pub fn not_authenticated() -> Self {
        ApiError {
            challenge: Some("Bearer"),
            ..Self::new(StatusCode::UNAUTHORIZED, "Not authenticated")
        }
    }

    /// 413 `Request body too large`.
    pub fn too_large() -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large")
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn as_response(&self) -> Response {
        let body = serde_json::json!({
            "error": self.message,
            "status_code": self.status.as_u16(),
        });
        let mut resp = poem::web::Json(body)
            .with_status(self.status)
            .into_response();
        if let Some(challenge) = self.challenge {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if self.replayed {
            resp.headers_mut().insert(
                crate::idempotency::REPLAYED_HEADER,
                HeaderValue::from_static("true"),
            );
        }
        resp
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.as_response()
    }
}

/// The error statuses every endpoint documents.
const DOCUMENTED: &[(u16, &str)] = &[
    (
        400,
        "The lifecycle does not allow this move from the task's status",
    ),
    (
        401,
        "No token, or an invalid one (`WWW-Authenticate: Bearer`)",
    ),
    (403, "The policy does not allow this actor to do this"),
    (404, "No such task, worker or route"),
    (
        409,
        "The task has subtasks or dependents, the caller's lease was lost (`fence`), or a \
         request with this `Idempotency-Key` is still running",
    ),
    (412, "`If-Match` does not match the task's version"),
    (413, "The request body is over 64 KiB"),
    (
        415,
        "The request body is not JSON (its `Content-Type` is not `application/json`)",
    ),
    (422, "Invalid input; the message starts with the field name"),
    (500, "Internal error"),
    (501, "The store does not support this operation"),
    (503, "The database or the signing keys are unavailable"),
];

impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: DOCUMENTED
                .iter()
                .map(|&(status, description)| MetaResponse {
                    description,
                    status: Some(status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: "application/json; charset=utf-8",
                        schema: ErrorBody::schema_ref(),
                    }],
                    headers: vec![],
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        ErrorBody::register(registry);
    }
}

impl From<taskflow_core::Error> for ApiError {
    fn from(err: taskflow_core::Error) -> Self {
        use taskflow_core::Error as E;
        let status = match &err {
            E::NotFound { .. } => StatusCode::NOT_FOUND,
            E::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            E::InvalidTransition { .. }
            | E::InvalidStatusChange { .. }
            | E::WaitingOnDependencies { .. }
            | E::NoLease => StatusCode::BAD_REQUEST,
            E::Forbidden { .. } => StatusCode::FORBIDDEN,
            E::VersionMismatch { .. } => StatusCode::PRECONDITION_FAILED,
            E::HasSubtasks | E::HasDependents | E::LeaseLost { .. } | E::IdempotencyInProgress => {
                StatusCode::CONFLICT
            }
            E::Unsupported { .. } => StatusCode::NOT_IMPLEMENTED,
            E::Unavailable(_) => {
                tracing::error!(error = %err, "database unavailable");
                // Clients, proxies and load balancers retry a 503. The cause stays in the log.
                return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Database unavailable");
            }
            _ => {
                tracing::error!(error = %err, "store failure");
                return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
            }
        };
        ApiError::new(status, err.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Missing => ApiError::not_authenticated(),
            e if e.is_unavailable() => {
                tracing::error!(error = %e, "cannot verify tokens");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("Auth unavailable: {e}"),
                )
            }
            e => ApiError {
                challenge: Some(r#"Bearer error="invalid_token""#),
                ..ApiError::new(StatusCode::UNAUTHORIZED, format!("Invalid token: {e}"))
            },
        }
    }
}

/// Turns any error that reached the top of the app into the one body shape.
pub(crate) fn to_response(err: poem::Error) -> Response {
    api_error(err).into_response()
}

fn api_error(err: poem::Error) -> ApiError {
    if let Some(e) = err.downcast_ref::<ApiError>() {
        return e.clone();
    }
    if err.is::<NotFoundError>() {
        return ApiError::new(StatusCode::NOT_FOUND, "Not found");
    }
    if err.is::<MethodNotAllowedError>() {
        return ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed");
    }
    if err.is::<AuthorizationError>() {
        return ApiError::not_authenticated();
    }
    if let Some(e) = err.downcast_ref::<ParseParamError>() {
        if e.name == crate::idempotency::KEY_HEADER {
            // Not even text (a byte outside visible ASCII): the key's one message.
            return ApiError::unprocessable(e.name, "must be 1 to 255 visible ASCII characters");
        }
        return ApiError::unprocessable(e.name, param_reason(&e.reason));
    }
    if let Some(e) = err.downcast_ref::<ParsePathError>() {
        return ApiError::unprocessable(path_param_name(e.name), param_reason(&e.reason));
    }
    if err.is::<PoemParsePathError>() {
        return ApiError::unprocessable("path", "invalid path parameter");
    }
    if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
        return ApiError::unprocessable("body", &e.reason);
    }
    if let Some(e) = err.downcast_ref::<ContentTypeError>() {
        return ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string());
    }
    let status = err.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::too_large();
    }
    if status.is_server_error() {
        tracing::error!(error = %err, "unhandled error");
    }
    let message = status.canonical_reason().unwrap_or("Error");
    ApiError::new(status, message)
}

/// poem-openapi extracts path parameters under positional names (`param0`, `param1`, …), not
/// the declared ones. Every route of this API has exactly one path parameter, `id`.
fn path_param_name(name: &'static str) -> &'static str {
    match name.strip_prefix("param") {
        Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => "id",
        _ => name,
    }
}

/// poem-openapi's reasons quote the schema type, e.g. `failed to parse "integer_int64": invalid
/// digit found in string (occurred while parsing "optional_integer_int64")`; say what was
/// expected instead.
fn param_reason(reason: &str) -> String {
    if reason.contains("expects an input value") {
        "field required".to_owned()
    } else if [
        "integer_int64",
        "integer_int32",
        "integer(int64)",
        "integer(int32)",
    ]
    .iter()
    .any(|ty| reason.contains(ty))
    {
        "must be an integer in range".to_owned()
    } else {
        let reason = reason
            .split(" (occurred while parsing")
            .next()
            .unwrap_or(reason);
        reason.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_errors_name_the_parameter() {
        assert_eq!(path_param_name("param0"), "id");
        assert_eq!(path_param_name("param12"), "id");
        assert_eq!(path_param_name("params"), "params");
        assert_eq!(path_param_name("limit"), "limit");
        assert_eq!(
            param_reason(
                r#"failed to parse "integer_int64": invalid digit found in string (occurred while parsing "optional_integer_int64")"#
            ),
            "must be an integer in range"
        );
        assert_eq!(
            param_reason(
                r#"failed to parse "integer_int32": number too large to fit in target type"#
            ),
            "must be an integer in range"
        );
        assert_eq!(
            param_reason(r#"failed to parse "integer_int32": expects an input value"#),
            "field required"
        );
        assert_eq!(
            param_reason(
                r#"failed to parse "TaskStatus": Expect a valid enumeration value. (occurred while parsing "optional_TaskStatus")"#
            ),
            r#"failed to parse "TaskStatus": Expect a valid enumeration value."#
        );
    }
}
