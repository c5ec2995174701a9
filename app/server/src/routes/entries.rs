//! The caller's diary entries: create, list (newest first), read, edit,
//! delete. Someone else's entry is `404 not_found`, never `403`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use metachat_core::event::Metadata;
use metachat_domain::{
    DiariesError, DiaryError, DiaryTimeline, EntryId, TimelineEntry, TimelineError, UserId,
    MAX_TEXT_BYTES,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::users::Position;
use super::{rfc3339, wait_read, written, written_at};
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, EntryPath};
use crate::mood_worker::{self, MoodView};
use crate::state::AppState;

/// Default page size.
const DEFAULT_LIMIT: usize = 20;
/// Largest page size.
const MAX_LIMIT: usize = 100;

/// `POST /v1/entries`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateEntry {
    /// 1 to 16,384 bytes of UTF-8 after trimming, not whitespace-only; no
    /// control characters other than newline and tab.
    #[schema(example = "Today I walked by the sea and felt calm.")]
    text: String,
}

/// `PUT /v1/entries/{entry_id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EditEntry {
    /// The new text (same rules as on creation).
    text: String,
    /// The revision the edit is based on; another is `409 revision_conflict`.
    expected_revision: u64,
}

/// A created entry.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Created {
    /// The new entry's id.
    #[schema(value_type = String, format = Uuid)]
    entry_id: EntryId,
    /// Always 0.
    revision: u64,
    /// RFC 3339 UTC.
    created_at: String,
    /// Log position of the write.
    position: u64,
}

/// An edited entry.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Edited {
    /// The entry.
    #[schema(value_type = String, format = Uuid)]
    entry_id: EntryId,
    /// Its revision now.
    revision: u64,
    /// Log position of the write.
    position: u64,
}

/// A diary entry.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Entry {
    /// The entry's id.
    #[schema(value_type = String, format = Uuid)]
    entry_id: EntryId,
    /// The text.
    text: String,
    /// 0 on creation, one more per edit.
    revision: u64,
    /// RFC 3339 UTC.
    created_at: String,
    /// RFC 3339 UTC.
    updated_at: String,
    /// The mood of the current revision, once analyzed.
    mood: Option<MoodView>,
}

/// One entry, with the position of the projections that served it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EntryRead {
    /// The entry.
    #[serde(flatten)]
    entry: Entry,
    /// How far the projections have caught up.
    position: u64,
}

/// A page of entries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EntryPage {
    /// The entries.
    entries: Vec<Entry>,
    /// Pass as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
    /// How far the projections have caught up.
    position: u64,
}

/// `GET /v1/entries` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Wait until the projections applied this position.
    min_position: Option<u64>,
    /// How long to wait for `min_position`, in milliseconds (default 5000).
    #[param(maximum = 30000)]
    wait_ms: Option<u64>,
}

/// `DELETE /v1/entries/{entry_id}` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeleteQuery {
    /// Delete only if the entry is at this revision.
    expected_revision: Option<u64>,
}

/// The API's revision of a domain revision (1 after creation).
fn api_revision(domain: u64) -> u64 {
    domain.saturating_sub(1)
}

fn check_text(text: &str) -> Result<&str, ApiError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(ApiError::field("text", "must not be empty or whitespace"));
    }
    if trimmed.len() > MAX_TEXT_BYTES {
        return Err(ApiError::field(
            "text",
            format!("must be at most {MAX_TEXT_BYTES} bytes"),
        ));
    }
    Ok(trimmed)
}

fn diaries_error(e: DiariesError) -> ApiError {
    match e {
        DiariesError::UnknownAuthor => ApiError::Unauthorized,
        DiariesError::Entry(e) => domain_error(e),
        DiariesError::Store(e) => ApiError::store(e),
        other => ApiError::internal(other),
    }
}

fn domain_error(e: DiaryError) -> ApiError {
    match e {
        DiaryError::NotFound | DiaryError::NotAuthor | DiaryError::AlreadyExists => {
            ApiError::NotFound
        }
        DiaryError::Deleted => ApiError::EntryDeleted,
        DiaryError::RevisionMismatch { actual, .. } => ApiError::RevisionConflict {
            current_revision: api_revision(actual),
        },
        other => ApiError::field("text", other.to_string()),
    }
}

fn metadata(user: UserId) -> Metadata {
    crate::correlation::metadata().with_actor(user.to_string())
}

/// Creates an entry.
#[utoipa::path(post, path = "/v1/entries", tag = "entries", request_body = CreateEntry,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created (durable)", body = Created,
            headers(("X-MetaChat-Position" = u64, description = "Log position of the write"))),
        (status = 400, description = "`invalid_json` or `invalid_body`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 408, description = "`request_timeout`: the body did not arrive in time", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_field` (text)", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<CreateEntry>,
) -> Result<Response, ApiError> {
    let text = check_text(&body.text)?;
    let entry_id = EntryId::new();
    let done = state
        .inner
        .diaries()?
        .create(entry_id, auth.user_id, text, metadata(auth.user_id))
        .await
        .map_err(diaries_error)?;
    let (position, recorded) = written_at(&state, &done).await?;
    state.inner.wrote(auth.user_id, position);
    Ok(written(
        StatusCode::CREATED,
        position,
        Created {
            entry_id,
            revision: 0,
            created_at: rfc3339(recorded),
            position,
        },
    ))
}

/// Lists the caller's entries, newest first.
#[utoipa::path(get, path = "/v1/entries", tag = "entries",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of entries", body = EntryPage),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 503, description = "`not_caught_up` or `unavailable`", body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<EntryPage>, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::InvalidQuery(format!(
            "limit must be 1 to {MAX_LIMIT}"
        )));
    }
    let names = mood_worker::entry_projections();
    let position = wait_read(&state, auth.user_id, &names, q.min_position, q.wait_ms).await?;
    let page = DiaryTimeline::page(
        &state.inner.read_models,
        &state.inner.vault,
        auth.user_id,
        q.cursor.as_deref(),
        limit,
    )
    .await
    .map_err(|e| match e {
        TimelineError::InvalidCursor => ApiError::InvalidQuery("invalid cursor".into()),
        TimelineError::Store(e) => ApiError::store(e),
        other => ApiError::internal(other),
    })?;
    let mut entries = Vec::with_capacity(page.entries.len());
    for e in page.entries {
        entries.push(entry_view(&state, auth.user_id, e).await?);
    }
    Ok(Json(EntryPage {
        entries,
        next_cursor: page.next_cursor,
        position,
    }))
}

async fn entry_view(state: &AppState, user: UserId, e: TimelineEntry) -> Result<Entry, ApiError> {
    let mood = mood_worker::entry_mood(state, user, e.entry_id, e.revision).await?;
    Ok(Entry {
        entry_id: e.entry_id,
        text: e.text,
        revision: api_revision(e.revision),
        created_at: rfc3339(e.created_at),
        updated_at: rfc3339(e.updated_at),
        mood,
    })
}

/// Reads one of the caller's entries.
#[utoipa::path(get, path = "/v1/entries/{entry_id}", tag = "entries",
    security(("bearer" = [])),
    params(("entry_id" = String, Path, description = "The entry's id (UUID)"), super::ReadQuery),
    responses(
        (status = 200, description = "The entry", body = EntryRead),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`not_found`: unknown, deleted, or someone else's", body = ErrorBody),
        (status = 503, description = "`not_caught_up` or `unavailable`", body = ErrorBody),
    ))]
pub(crate) async fn get_one(
    State(state): State<AppState>,
    auth: AuthUser,
    EntryPath(entry_id): EntryPath,
    ApiQuery(q): ApiQuery<super::ReadQuery>,
) -> Result<Json<EntryRead>, ApiError> {
    let names = mood_worker::entry_projections();
    let position = wait_read(&state, auth.user_id, &names, q.min_position, q.wait_ms).await?;
    let found = DiaryTimeline::entry(
        &state.inner.read_models,
        &state.inner.vault,
        auth.user_id,
        entry_id,
    )
    .await
    .map_err(ApiError::store)?
    .ok_or(ApiError::NotFound)?;
    Ok(Json(EntryRead {
        entry: entry_view(&state, auth.user_id, found).await?,
        position,
    }))
}

/// Replaces the text of one of the caller's entries.
#[utoipa::path(put, path = "/v1/entries/{entry_id}", tag = "entries", request_body = EditEntry,
    security(("bearer" = [])),
    params(("entry_id" = String, Path, description = "The entry's id (UUID)")),
    responses(
        (status = 200, description = "Edited (durable)", body = Edited,
            headers(("X-MetaChat-Position" = u64, description = "Log position of the write"))),
        (status = 400, description = "`invalid_json` or `invalid_body`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`not_found`: unknown or someone else's", body = ErrorBody),
        (status = 409, description = "`revision_conflict`, with `current_revision`", body = ErrorBody),
        (status = 410, description = "`entry_deleted`", body = ErrorBody),
        (status = 408, description = "`request_timeout`: the body did not arrive in time", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_field` (text)", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
    ))]
pub(crate) async fn edit(
    State(state): State<AppState>,
    auth: AuthUser,
    EntryPath(entry_id): EntryPath,
    ApiJson(body): ApiJson<EditEntry>,
) -> Result<Response, ApiError> {
    let text = check_text(&body.text)?;
    let done = state
        .inner
        .diaries()?
        .edit(
            entry_id,
            auth.user_id,
            text,
            Some(body.expected_revision.saturating_add(1)),
            metadata(auth.user_id),
        )
        .await
        .map_err(diaries_error)?;
    let (position, _) = written_at(&state, &done).await?;
    let root = done.root;
    state.inner.wrote(auth.user_id, position);
    Ok(written(
        StatusCode::OK,
        position,
        Edited {
            entry_id,
            revision: api_revision(root.state.revision()),
            position,
        },
    ))
}

/// Deletes one of the caller's entries (its text and mood disappear from
/// every read).
#[utoipa::path(delete, path = "/v1/entries/{entry_id}", tag = "entries",
    security(("bearer" = [])),
    params(("entry_id" = String, Path, description = "The entry's id (UUID)"), DeleteQuery),
    responses(
        (status = 200, description = "Deleted (durable)", body = Position,
            headers(("X-MetaChat-Position" = u64, description = "Log position of the write"))),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`not_found`: unknown or someone else's", body = ErrorBody),
        (status = 409, description = "`revision_conflict`, with `current_revision`", body = ErrorBody),
        (status = 410, description = "`entry_deleted`: deleted before", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
    ))]
pub(crate) async fn delete_one(
    State(state): State<AppState>,
    auth: AuthUser,
    EntryPath(entry_id): EntryPath,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> Result<Response, ApiError> {
    // One attempt at exactly the expected revision: a concurrent change is
    // a conflict (the repository's retry finds the new revision), never
    // overwritten.
    let done = state
        .inner
        .diaries()?
        .delete(
            entry_id,
            auth.user_id,
            q.expected_revision.map(|r| r.saturating_add(1)),
            metadata(auth.user_id),
        )
        .await
        .map_err(diaries_error)?;
    let (position, _) = written_at(&state, &done).await?;
    state.inner.wrote(auth.user_id, position);
    Ok(written(StatusCode::OK, position, Position { position }))
}
