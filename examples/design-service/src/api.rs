//! What the service's clients see: every body is JSON in camelCase, and
//! every error, whether fwdb's, a rejected request body or an unknown route,
//! has one shape: `{"error": {"code": "not_found", "message": "..."}}`.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use fwdb::{Avatar, Design, ErrorKind, Uuid};
use serde::Serialize;
use serde_json::{json, Value};

/// An error answer: the status, a stable code for programs, a message for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": { "code": self.code, "message": self.message } }))).into_response()
    }
}

/// fwdb's errors: the kind decides the status; a validation message names the field.
impl From<fwdb::Error> for ApiError {
    fn from(e: fwdb::Error) -> Self {
        let (status, code) = match e.kind() {
            ErrorKind::Validation => (StatusCode::BAD_REQUEST, "invalid_input"),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
            ErrorKind::Timeout | ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        if status.is_server_error() {
            // Server-side details (hosts, SQL) go to the log, not to the client.
            eprintln!("error: {e}");
            return ApiError::new(status, code, "the request could not be served; the service's log says why");
        }
        ApiError::new(status, code, e.to_string())
    }
}

/// axum's own rejections of a body, in the same shape as every other error.
impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let code = match &r {
            JsonRejection::JsonSyntaxError(_) => "malformed_json",
            JsonRejection::JsonDataError(_) => "invalid_input",
            JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
            _ => "unreadable_body",
        };
        ApiError::new(r.status(), code, r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", r.body_text())
    }
}

/// A JSON request body; a body axum rejects becomes an [`ApiError`].
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<Value>::from_request(req, state).await?;
        Ok(JsonBody(value))
    }
}

/// The `{id}` of a design route, parsed (a malformed id is a 400 naming it).
pub struct DesignId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for DesignId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state).await?;
        Ok(DesignId(fwdb::parse_design_id(&raw)?))
    }
}

/// Routes that do not exist.
pub async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no route for {method} {}", uri.path()))
}

/// Routes that exist, with another method.
pub async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not take {method}", uri.path()),
    )
}

/// `{"design": ...}`: fwdb's `Design` already serializes in camelCase.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DesignBody {
    pub design: Design,
}

/// `{"design": ..., "avatar": ...}` (`avatar` is null when the design has none).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DesignWithAvatar {
    pub design: Design,
    pub avatar: Option<AvatarBody>,
}

/// An avatar as this API shows it: fwdb's `Avatar` mirrors the PostgreSQL
/// columns (snake_case); the API speaks camelCase like the design documents.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AvatarBody {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub status: String,
    pub measurements: Value,
    pub model_ref: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub updated_by: Option<Uuid>,
}

impl From<Avatar> for AvatarBody {
    fn from(a: Avatar) -> Self {
        AvatarBody {
            id: a.id,
            user_id: a.user_id,
            name: a.name,
            status: a.status,
            measurements: a.measurements,
            model_ref: a.model_ref,
            created_at: a.created_at,
            updated_at: a.updated_at,
            deleted_at: a.deleted_at,
            created_by: a.created_by,
            updated_by: a.updated_by,
        }
    }
}
