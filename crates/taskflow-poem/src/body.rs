//! JSON request bodies whose errors name the field, and the 64 KiB body limit.
//!
//! poem-openapi's own `Json<T>` reports a wrong type without saying which field it was. These
//! payloads keep the OpenAPI schema of `T` but parse with serde and `serde_path_to_error`, so a
//! client reads e.g. `progress_percent: invalid type: string "x", expected i32`.

use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Middleware, Request, RequestBody, Response};
use poem_openapi::registry::{MetaMediaType, MetaRequest, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The largest request body accepted, in bytes on the wire.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

const JSON: &str = "application/json; charset=utf-8";

/// A required JSON body.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

/// An optional JSON body: an empty body (or `null`) is `T::default()`.
#[derive(Debug, Clone)]
pub struct OptionalJsonBody<T>(pub T);

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Reads the body as JSON. A missing `Content-Type` is taken as JSON (as `curl -d` users
/// expect); any other media type is refused with 415.
async fn read_json(req: &Request, body: &mut RequestBody) -> poem::Result<Vec<u8>> {
    if let Some(ct) = req.content_type().filter(|ct| !is_json(ct)) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Unsupported media type '{ct}': send application/json"),
        )
        .into());
    }
    let bytes = body
        .take()?
        .into_bytes_limit(MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::too_large())?;
    Ok(bytes.to_vec())
}

/// Parses JSON into `T`, naming the field that failed.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            // serde_json reports some wrong types as syntax errors (a number where an enum's
            // string belongs is `expected value`). When the document is well-formed after
            // all, read it again as a `Value` to name the field and the type.
            if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(bytes)
                && let Err(err) = serde_path_to_error::deserialize::<_, T>(doc)
            {
                return data_error(&err.path().to_string(), &err.into_inner().to_string());
            }
            return ApiError::unprocessable("body", format!("malformed JSON: {inner}"));
        }
        data_error(&path, &inner.to_string())
    })?;
    de.end()
        .map_err(|e| ApiError::unprocessable("body", format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// A well-formed document that does not fit `T`: name the field at `path`.
fn data_error(path: &str, text: &str) -> ApiError {
    if !matches!(path, "" | "." | "?") {
        return ApiError::unprocessable(path, strip_position(text));
    }
    if let Some(field) = text
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        return ApiError::unprocessable(field, "field required");
    }
    ApiError::unprocessable("body", text)
}

/// serde reads a struct from a JSON array too (`["title"]` would be a task); a body is an
/// object.
fn refuse_array(bytes: &[u8]) -> Result<(), ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => Err(ApiError::unprocessable(
            "body",
            "must be a JSON object, not an array",
        )),
        _ => Ok(()),
    }
}

/// serde_json appends ` at line 1 column 20`; the field name already says where.
fn strip_position(text: &str) -> &str {
    text.find(" at line ").map_or(text, |i| &text[..i])
}

macro_rules! json_payload {
    ($ty:ident, $required:expr, [$($bounds:tt)+], $parse:expr) => {
        impl<'a, T> ApiExtractor<'a> for $ty<T>
        where
            T: $($bounds)+,
        {
            const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
            type ParamType = ();
            type ParamRawType = ();

            fn register(registry: &mut Registry) {
                T::register(registry);
            }

            fn request_meta() -> Option<MetaRequest> {
                Some(MetaRequest {
                    description: None,
                    content: vec![MetaMediaType {
                        content_type: JSON,
                        schema: T::schema_ref(),
                    }],
                    required: $required,
                })
            }

            async fn from_request(
                request: &'a Request,
                body: &mut RequestBody,
                _param_opts: ExtractParamOptions<()>,
            ) -> poem::Result<Self> {
                let bytes = read_json(request, body).await?;
                let parse: fn(&[u8]) -> Result<T, ApiError> = $parse;
                Ok($ty(parse(&bytes)?))
            }
        }
    };
}

json_payload!(JsonBody, true, [Type + DeserializeOwned + Send], |bytes| {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::unprocessable("body", "field required"));
    }
    refuse_array(bytes)?;
    parse(bytes)
});

json_payload!(
    OptionalJsonBody,
    false,
    [Type + DeserializeOwned + Default + Send],
    |bytes| {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(T::default());
        }
        refuse_array(bytes)?;
        Ok(parse::<Option<T>>(bytes)?.unwrap_or_default())
    }
);

/// Refuses bodies over [`MAX_BODY_BYTES`] with 413 before any parsing: a declared
/// `Content-Length` is checked up front, and every body is read through a limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct BodyLimit;

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint(ep)
    }
}

/// The endpoint [`BodyLimit`] wraps.
#[derive(Debug)]
pub struct BodyLimitEndpoint<E>(E);

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let declared = req
            .headers()
            .get(poem::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Err(ApiError::too_large().into());
        }
        // An HTTP/1 request with neither a length nor chunks has no body (most GETs): nothing
        // to read or bound. (HTTP/2 frames a body without either header, so it is read.)
        let http1 = req.version() <= poem::http::Version::HTTP_11;
        let chunked = req
            .headers()
            .contains_key(poem::http::header::TRANSFER_ENCODING);
        if http1 && !chunked && declared.is_none_or(|n| n == 0) {
            return self.0.call(req).await.map(IntoResponse::into_response);
        }
        let body = req
            .take_body()
            .into_bytes_limit(MAX_BODY_BYTES)
            .await
            .map_err(|_| ApiError::too_large())?;
        req.set_body(body);
        self.0.call(req).await.map(IntoResponse::into_response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dto::{CreateTaskDto, PatchTaskDto};

    #[test]
    fn errors_name_the_field() {
        let e = parse::<CreateTaskDto>(br#"{"title": 5}"#).unwrap_err();
        assert!(
            e.message().starts_with("title: invalid type"),
            "{}",
            e.message()
        );
        let e = parse::<CreateTaskDto>(br#"{"description": "x"}"#).unwrap_err();
        assert_eq!(e.message(), "title: field required");
        let e = parse::<CreateTaskDto>(br#"{"title": "t", "status": "done"}"#).unwrap_err();
        assert!(
            e.message().starts_with("status: unknown variant `done`"),
            "{}",
            e.message()
        );
        let e = parse::<CreateTaskDto>(br#"{"title": "t""#).unwrap_err();
        assert!(
            e.message().starts_with("body: malformed JSON"),
            "{}",
            e.message()
        );
        let e = parse::<CreateTaskDto>(br#"{"title": "t"} trailing"#).unwrap_err();
        assert!(
            e.message().starts_with("body: malformed JSON"),
            "{}",
            e.message()
        );
        // serde_json calls a number where an enum belongs a syntax error; it is a wrong type.
        let e = parse::<CreateTaskDto>(br#"{"title": "t", "status": 1}"#).unwrap_err();
        assert!(
            e.message().starts_with("status: invalid type: integer `1`"),
            "{}",
            e.message()
        );
        let e = parse::<PatchTaskDto>(br#"{"priority": [3]}"#).unwrap_err();
        assert!(e.message().starts_with("priority: "), "{}", e.message());
        assert_eq!(
            refuse_array(b" [\"title\"]").unwrap_err().message(),
            "body: must be a JSON object, not an array"
        );
        assert!(refuse_array(br#"{"title": "t"}"#).is_ok());
        let e = parse::<PatchTaskDto>(br#"{"progress_percent": "x"}"#).unwrap_err();
        assert_eq!(
            e.message(),
            "progress_percent: invalid type: string \"x\", expected i32"
        );
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let d = parse::<CreateTaskDto>(br#"{"title": "t", "id": 9, "version": 3}"#).unwrap();
        assert_eq!(d.title, "t");
    }
}

/// A JSON response body written straight from `T`'s `serde::Serialize`, documented with `T`'s
/// OpenAPI schema.
///
/// poem-openapi's `Json<T>` first builds a `serde_json::Value` tree of the whole body (a map
/// and an owned key per field of every object), then writes that. For a page of 50 tasks that
/// is hundreds of allocations per request for nothing; this writes the bytes in one pass. `T`'s
/// `Serialize` must produce exactly what its `ToJSON` would (the DTO tests check that).
#[derive(Debug, Clone)]
pub struct SerdeJson<T>(pub T);

impl<T: Type> poem_openapi::payload::Payload for SerdeJson<T> {
    const CONTENT_TYPE: &'static str = JSON;

    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: serde::Serialize + Send> IntoResponse for SerdeJson<T> {
    fn into_response(self) -> Response {
        poem::web::Json(self.0).into_response()
    }
}
