//! The steady-state chat service (`ww serve chat`): rooms, history pages and moderation.
//!
//! History is one list per room, newest first, paged with one cursor format for every page:
//! `"{epoch}.{offset}"` of the last message returned. The first pages come from the recent
//! cache (the newest N of the current epoch) while it reaches, the rest from SQL.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use platform::ApiError;
use platform::auth::{AuthUser, JwtKeys};
use platform::clock::Clock;
use platform::db::Database;
use platform::events::contracts::{CHAT_MESSAGE_DELETED, ChatMessageDeleted};
use platform::events::{Envelope, EventBus};
use platform::http::{Json, Path, Query};
use platform::roles::Role;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::protocol::MessageView;
use crate::recent::Recent;
use crate::room::{ROOM_NAME_RULE, is_room_name};
use crate::store::{self, Cursor, RoomRow};

#[derive(Clone)]
pub struct ChatState {
    pub db: Database,
    pub keys: Arc<JwtKeys>,
    pub bus: EventBus,
    pub topic: String,
    pub cluster: String,
    pub recent: Arc<Recent>,
    pub clock: Clock,
}

impl FromRef<ChatState> for Arc<JwtKeys> {
    fn from_ref(state: &ChatState) -> Self {
        state.keys.clone()
    }
}

pub fn router(state: ChatState) -> Router {
    Router::new()
        .route("/api/chat/rooms", get(list_rooms).post(create_room))
        .route("/api/chat/rooms/{room}/messages", get(messages))
        .route("/api/chat/rooms/{room}/messages/{id}", delete(delete_message))
        .with_state(state)
}

/// A room.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Room {
    #[schema(example = "snow-festival")]
    pub name: String,
    pub description: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<RoomRow> for Room {
    fn from(r: RoomRow) -> Self {
        Self { name: r.name, description: r.description, created_at: r.created_at }
    }
}

/// A room to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewRoom {
    /// 1 to 64 lowercase letters, digits, `-` or `_`, starting with a letter or digit.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$", example = "snow-festival")]
    pub name: String,
    /// What the room is about (at most 500 characters).
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: String,
}

const DESCRIPTION_MAX: usize = 500;

#[utoipa::path(get, path = "/api/chat/rooms", tag = "chat", security(("bearer" = [])),
    responses((status = 200, description = "Rooms by name (at most 1,000).", body = Vec<Room>)))]
pub async fn list_rooms(State(state): State<ChatState>, _user: AuthUser) -> Result<Json<Vec<Room>>, ApiError> {
    Ok(Json(store::rooms(&state.db.pool, 1_000).await?.into_iter().map(Room::from).collect()))
}

#[utoipa::path(post, path = "/api/chat/rooms", tag = "chat", security(("bearer" = [])), request_body = NewRoom,
    responses(
        (status = 201, description = "Created.", body = Room),
        (status = 409, description = "A room of that name exists.", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a room name, or a description over 500 characters.", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_room(
    State(state): State<ChatState>,
    user: AuthUser,
    Json(new): Json<NewRoom>,
) -> Result<(StatusCode, Json<Room>), ApiError> {
    if !is_room_name(&new.name) {
        return Err(ApiError::unprocessable("invalid-room-name", format!("name: {ROOM_NAME_RULE}.")));
    }
    let description = new.description.trim().to_owned();
    if description.chars().count() > DESCRIPTION_MAX {
        return Err(ApiError::unprocessable(
            "invalid-description",
            format!("description: at most {DESCRIPTION_MAX} characters."),
        ));
    }
    let row = RoomRow { name: new.name, description, created_by: user.user_id, created_at: state.clock.now() };
    if !store::create_room(&state.db.pool, &row).await? {
        return Err(ApiError::conflict("room-exists", format!("A room named `{}` exists.", row.name)));
    }
    Ok((StatusCode::CREATED, Json(Room::from(row))))
}

/// Which page of a room's history.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The `next` cursor of the previous page; absent for the newest messages.
    #[param(pattern = "^[0-9]{1,18}\\.-?[0-9]{1,19}$", example = "1.4182")]
    pub before: Option<String>,
    /// Messages per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

/// One page of a room's history, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub messages: Vec<MessageView>,
    /// The cursor of the next (older) page; `null` on the last page.
    pub next: Option<String>,
}

fn parse_cursor(raw: &str) -> Option<Cursor> {
    let (epoch, offset) = raw.split_once('.')?;
    Some((epoch.parse().ok()?, offset.parse().ok()?))
}

fn cursor_text((epoch, offset): Cursor) -> String {
    format!("{epoch}.{offset}")
}

#[utoipa::path(get, path = "/api/chat/rooms/{room}/messages", tag = "chat", security(("bearer" = [])),
    params(("room" = String, Path, description = "The room.", max_length = 64, example = "lobby"), PageQuery),
    responses(
        (status = 200, description = "Newest first.", body = Page),
        (status = 400, description = "A malformed cursor or limit.", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not a room name.", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn messages(
    State(state): State<ChatState>,
    _user: AuthUser,
    Path(room): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<Page>, ApiError> {
    if !is_room_name(&room) {
        return Err(ApiError::not_found("unknown-room", format!("Not a room: {ROOM_NAME_RULE}.")));
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request("invalid-query", "limit must be 1 to 200."));
    }
    let before = match &q.before {
        Some(raw) => Some(
            parse_cursor(raw)
                .ok_or_else(|| ApiError::bad_request("invalid-cursor", "before must be a `next` cursor of a page."))?,
        ),
        None => None,
    };
    let epoch = store::current_epoch(&state.db.pool, &state.cluster).await?;
    let mut found: Vec<(Cursor, MessageView)> = Vec::new();
    // The cache holds the newest of the current epoch, contiguous from its oldest entry on.
    if let Some(epoch) = &epoch {
        let in_epoch = before.is_none_or(|(e, _)| e == epoch.number);
        if in_epoch {
            let from_cache = async {
                let oldest = state.recent.oldest(epoch.number, &room).await?;
                let below = before.map(|(_, o)| o);
                let newest = state.recent.newest(epoch.number, &room, below, usize::try_from(limit)?).await?;
                anyhow::Ok(oldest.zip(newest))
            };
            match from_cache.await {
                Ok(Some((_, newest))) => found.extend(newest.into_iter().map(|m| ((epoch.number, m.offset), m))),
                Ok(None) => {}
                // The cache is a shortcut: SQL answers without it.
                Err(e) => tracing::debug!(error = %format!("{e:#}"), "recent cache unavailable"),
            }
        }
    }
    let have = i64::try_from(found.len()).unwrap_or(limit);
    if have < limit {
        let from = found.last().map(|(c, _)| *c).or(before);
        let older = store::page(&state.db.pool, &state.cluster, &room, from, limit - have).await?;
        found.extend(older);
    }
    let next = (i64::try_from(found.len()).unwrap_or(0) == limit)
        .then(|| found.last().map(|(c, _)| cursor_text(*c)))
        .flatten();
    Ok(Json(Page { messages: found.into_iter().map(|(_, m)| m).collect(), next }))
}

#[utoipa::path(delete, path = "/api/chat/rooms/{room}/messages/{id}", tag = "chat", security(("bearer" = [])),
    params(
        ("room" = String, Path, description = "The room.", max_length = 64, example = "lobby"),
        ("id" = Uuid, Path, description = "The message id."),
    ),
    responses(
        (status = 202, description = "Removed from every view and from the history (within moments)."),
        (status = 403, description = "Only moderators delete messages.", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not a room name.", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_message(
    State(state): State<ChatState>,
    user: AuthUser,
    Path((room, id)): Path<(String, Uuid)>,
) -> Result<StatusCode, ApiError> {
    user.require(Role::Moderator)?;
    if !is_room_name(&room) {
        return Err(ApiError::not_found("unknown-room", format!("Not a room: {ROOM_NAME_RULE}.")));
    }
    let now = state.clock.now();
    let deleted = ChatMessageDeleted { id, room: room.clone(), deleted_by: user.user_id, deleted_at: now };
    let envelope = Envelope::new(CHAT_MESSAGE_DELETED, "chat", now, &deleted).map_err(ApiError::internal)?;
    state.bus.publish(&state.topic, &room, &envelope).await.map_err(|e| {
        ApiError::unavailable("log-unavailable", format!("The deletion could not be recorded ({e}); try again."), 2)
    })?;
    Ok(StatusCode::ACCEPTED)
}
