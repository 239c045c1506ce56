//! Files: upload as a raw body, metadata, streamed download, delete. Every rule is in
//! `FileService`; bodies stream through without being collected.

use super::error::ApiError;
use super::extract::{Auth, PathId};
use crate::AppState;
use crate::service::files::Upload;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use sotto_api::{ErrorBody, ErrorCode, FileInfo, UploadQuery};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The file's bytes.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // Only its schema is used: bodies stream, they are never collected.
struct FileBytes(Vec<u8>);

// The upload takes the raw `Body`, which the router's JSON body limit does not cover;
// the file size cap is enforced by the service while the body streams.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload))
        .routes(routes!(file_info, delete_file))
        .routes(routes!(download))
}

/// Upload a file to a room (members only). The body is the file's bytes; its
/// `Content-Type` is kept as the file's type.
#[utoipa::path(post, path = "/api/v1/rooms/{id}/files", tag = "files",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Room id"), UploadQuery),
    request_body(content = inline(FileBytes), content_type = "application/octet-stream",
        description = "The file's bytes, any media type"),
    responses(
        (status = 201, description = "Stored", body = FileInfo),
        (status = 400, description = "`invalid_input`: the name, the Content-Type, or an interrupted body", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` (not a member of a public room) or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found` (also a private room the caller is not in)", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: over the `files.max_size_bytes` setting", body = ErrorBody),
    ))]
async fn upload(
    State(state): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
    query: Result<Query<UploadQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, axum::Json<FileInfo>), ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(ErrorCode::InvalidInput, e.body_text()))?;
    let upload = Upload {
        name: q.name,
        // Lossy: a non-ASCII header fails the service's check, after the access check.
        content_type: headers
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        declared_size: headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok()),
    };
    let data = Box::pin(body.into_data_stream().map_err(std::io::Error::other));
    let info = state
        .services
        .files
        .upload(&auth.actor(), &id, upload, data)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(info)))
}

/// A file's metadata (members of its room).
#[utoipa::path(get, path = "/api/v1/files/{id}", tag = "files", security(("bearer" = [])),
    params(("id" = String, Path, description = "File id")),
    responses(
        (status = 200, description = "The file's metadata", body = FileInfo),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` (not a member of a public room) or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found` (also a file in a private room the caller is not in)", body = ErrorBody),
    ))]
async fn file_info(
    State(state): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
) -> Result<axum::Json<FileInfo>, ApiError> {
    Ok(axum::Json(
        state.services.files.get(&auth.actor(), &id).await?,
    ))
}

/// Download a file (members of its room), streamed, always as an attachment.
#[utoipa::path(get, path = "/api/v1/files/{id}/content", tag = "files",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "File id")),
    responses(
        (status = 200, description = "The bytes, with the file's `Content-Type`, \
            `Content-Length`, `Content-Disposition: attachment` and \
            `X-Content-Type-Options: nosniff`", content_type = "application/octet-stream", body = inline(FileBytes)),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` (not a member of a public room) or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found` (also a file in a private room the caller is not in)", body = ErrorBody),
    ))]
async fn download(
    State(state): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let d = state.services.files.download(&auth.actor(), &id).await?;
    let content_type = HeaderValue::from_str(&d.info.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    let disposition = HeaderValue::from_str(&disposition(d.info.name.as_deref()))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_LENGTH, HeaderValue::from(d.info.size)),
        (header::CONTENT_DISPOSITION, disposition),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        // Opened directly in a browser, the file runs no script and loads nothing.
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; sandbox"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("private")),
    ];
    Ok((headers, Body::from_stream(d.content)).into_response())
}

/// Delete a file: its uploader, or an owner of its room.
#[utoipa::path(delete, path = "/api/v1/files/{id}", tag = "files", security(("bearer" = [])),
    params(("id" = String, Path, description = "File id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` (neither uploader nor owner, or not a member of a public room) or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found` (also a file in a private room the caller is not in)", body = ErrorBody),
    ))]
async fn delete_file(
    State(state): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
) -> Result<StatusCode, ApiError> {
    state.services.files.delete(&auth.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `attachment` with the name as an ASCII fallback and as RFC 8187 UTF-8.
fn disposition(name: Option<&str>) -> String {
    let Some(name) = name else {
        return "attachment".into();
    };
    let fallback: String = name
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() || c == ' ') && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::disposition;

    #[test]
    fn dispositions_are_header_safe() {
        assert_eq!(disposition(None), "attachment");
        assert_eq!(
            disposition(Some("a b.txt")),
            "attachment; filename=\"a b.txt\"; filename*=UTF-8''a%20b.txt"
        );
        assert_eq!(
            disposition(Some("Zoë \"q\".pdf")),
            "attachment; filename=\"Zo_ _q_.pdf\"; filename*=UTF-8''Zo%C3%AB%20%22q%22.pdf"
        );
    }
}
