//! The created-mission API.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use platform::ApiError;
use platform::auth::AuthUser;
use platform::events::contracts::{MISSION_VERIFIED, MissionSource, MissionVerified, topics};
use platform::events::{Envelope, Outbox};
use platform::http::{Json, Path, Query};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::store::{self, Filter, Mission, Participant, Status, Verification};
use crate::{CreatedState, SERVICE};

type Problem = platform::error::Problem;

/// The longest period a mission may run.
pub const MAX_DAYS: i64 = 90;
pub const MAX_CAPACITY: i64 = 10_000;
/// How far ahead a mission may start.
pub const MAX_AHEAD_DAYS: i64 = 365;

/// `POST /api/created-missions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = NewCreatedMission)]
pub struct NewMission {
    /// One line, not only spaces, no control characters.
    #[schema(
        min_length = 1,
        max_length = 80,
        example = "Pick up litter on the riverside",
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub title: String,
    /// Up to 1000 characters; line breaks allowed, other control characters not.
    #[schema(max_length = 1000, pattern = "^[^\\u0000-\\u0009\\u000B-\\u001F\\u007F-\\u009F]*$")]
    pub description: String,
    /// First day (in `timeZone`), from today to 365 days ahead.
    pub starts_on: NaiveDate,
    /// Last day, inclusive: from `startsOn` to at most 90 days after it.
    pub ends_on: NaiveDate,
    /// IANA time zone the period's days are counted in (default `UTC`).
    #[schema(example = "Asia/Seoul")]
    pub time_zone: Option<String>,
    pub verification: Verification,
    /// People who may join, 1 to 10000.
    #[schema(minimum = 1, maximum = 10000)]
    pub capacity: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CreatedMissionView)]
pub struct MissionView {
    pub id: Uuid,
    pub creator: Uuid,
    pub title: String,
    pub description: String,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    pub time_zone: String,
    pub verification: Verification,
    pub capacity: i64,
    pub joined: i64,
    pub created_at: DateTime<Utc>,
}

impl From<Mission> for MissionView {
    fn from(m: Mission) -> Self {
        Self {
            id: m.id,
            creator: m.creator,
            title: m.title,
            description: m.description,
            starts_on: m.starts_on,
            ends_on: m.ends_on,
            time_zone: m.time_zone,
            verification: m.verification,
            capacity: m.capacity,
            joined: m.joined,
            created_at: DateTime::from_timestamp_millis(m.created_at).unwrap_or_default(),
        }
    }
}

fn zone(name: &str) -> Tz {
    name.parse().unwrap_or(Tz::UTC)
}

fn today_in(state: &CreatedState, tz: Tz) -> NaiveDate {
    state.clock.now().with_timezone(&tz).date_naive()
}

fn text_ok(t: &str) -> bool {
    !t.chars().any(|c| c.is_control() && c != '\n')
}

#[utoipa::path(post, path = "/api/created-missions", tag = "created-missions", security(("bearer" = [])), request_body = NewMission,
    responses(
        (status = 201, description = "Created.", body = MissionView),
        (status = 422, description = "A field out of range: `invalid-title`, `invalid-description`, `invalid-period`, `invalid-time-zone`, `invalid-capacity`.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<CreatedState>,
    user: AuthUser,
    Json(new): Json<NewMission>,
) -> Result<(StatusCode, Json<MissionView>), ApiError> {
    let title = new.title.trim();
    if title.is_empty() || title.chars().count() > 80 || !text_ok(title) || title.contains('\n') {
        return Err(ApiError::unprocessable("invalid-title", "title must be 1 to 80 characters on one line."));
    }
    if new.description.chars().count() > 1000 || !text_ok(&new.description) {
        return Err(ApiError::unprocessable("invalid-description", "description may be up to 1000 characters."));
    }
    let time_zone = new.time_zone.clone().unwrap_or_else(|| "UTC".to_owned());
    let tz: Tz = time_zone
        .parse()
        .map_err(|_| ApiError::unprocessable("invalid-time-zone", "timeZone must be an IANA zone, e.g. Asia/Seoul."))?;
    let today = today_in(&state, tz);
    if new.starts_on < today
        || (new.starts_on - today).num_days() > MAX_AHEAD_DAYS
        || new.ends_on < new.starts_on
        || (new.ends_on - new.starts_on).num_days() > MAX_DAYS
    {
        return Err(ApiError::unprocessable(
            "invalid-period",
            format!(
                "startsOn must be from today ({today}) to {MAX_AHEAD_DAYS} days ahead, endsOn from startsOn to {MAX_DAYS} days after it."
            ),
        ));
    }
    if !(1..=MAX_CAPACITY).contains(&new.capacity) {
        return Err(ApiError::unprocessable("invalid-capacity", format!("capacity must be 1 to {MAX_CAPACITY}.")));
    }
    let mission = Mission {
        id: Uuid::now_v7(),
        creator: user.user_id,
        title: title.to_owned(),
        description: new.description.trim().to_owned(),
        starts_on: new.starts_on,
        ends_on: new.ends_on,
        time_zone: tz.name().to_owned(),
        verification: new.verification,
        capacity: new.capacity,
        joined: 0,
        created_at: state.clock.now_millis(),
    };
    store::insert(&state.db.pool, &mission).await.map_err(ApiError::internal)?;
    Ok((StatusCode::CREATED, Json(mission.into())))
}

/// Which missions, and which page.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `active` (default: not over yet), `mine` (created by you) or `joined` (by you).
    pub filter: Option<Filter>,
    /// The `next` cursor of the previous page.
    #[param(pattern = "^[0-9]{1,15}\\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub before: Option<String>,
    /// 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CreatedMissionPage)]
pub struct MissionPage {
    pub missions: Vec<MissionView>,
    /// The cursor of the next (older) page; `null` on the last.
    pub next: Option<String>,
}

#[utoipa::path(get, path = "/api/created-missions", tag = "created-missions", security(("bearer" = [])), params(ListQuery),
    responses(
        (status = 200, description = "Newest first.", body = MissionPage),
        (status = 400, description = "A malformed filter, cursor or limit.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<CreatedState>,
    user: AuthUser,
    Query(q): Query<ListQuery>,
) -> Result<Json<MissionPage>, ApiError> {
    let (before, limit) = platform::cursor::page(q.before.as_deref(), q.limit, 20, 100)?;
    // "Not over yet" by the earliest date anywhere (UTC−12): a period in any zone may still run.
    let earliest = (state.clock.now() - chrono::Duration::hours(12)).date_naive();
    let rows = store::page(&state.db.pool, q.filter.unwrap_or(Filter::Active), user.user_id, earliest, before, limit)
        .await
        .map_err(ApiError::internal)?;
    let next = platform::cursor::next(rows.len(), limit, rows.last().map(|m| (m.created_at, m.id)));
    Ok(Json(MissionPage { missions: rows.into_iter().map(MissionView::from).collect(), next }))
}

/// A mission id from a path: anything that is not one is a mission that does not exist.
fn mission_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found("unknown-mission", "No such mission."))
}

fn participant_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw)
        .map_err(|_| ApiError::not_found("unknown-participant", "That person has not joined this mission."))
}

async fn find(state: &CreatedState, id: Uuid) -> Result<Mission, ApiError> {
    let mut conn = state.db.pool.acquire().await?;
    store::get(&mut conn, id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("unknown-mission", "No such mission."))
}

#[utoipa::path(get, path = "/api/created-missions/{id}", tag = "created-missions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The mission.")),
    responses(
        (status = 200, description = "The mission.", body = MissionView),
        (status = 404, description = "No such mission.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_one(
    State(state): State<CreatedState>,
    _user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<MissionView>, ApiError> {
    Ok(Json(find(&state, mission_id(&id)?).await?.into()))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CreatedMissionParticipant)]
pub struct ParticipantView {
    pub user_id: Uuid,
    pub status: Status,
    /// The completion's text (shown to the creator and the participant).
    pub text: Option<String>,
    pub joined_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
}

impl From<Participant> for ParticipantView {
    fn from(p: Participant) -> Self {
        Self {
            user_id: p.user_id,
            status: p.status,
            text: p.proof_text,
            joined_at: DateTime::from_timestamp_millis(p.joined_at).unwrap_or_default(),
            submitted_at: p.submitted_at.and_then(DateTime::from_timestamp_millis),
        }
    }
}

#[utoipa::path(post, path = "/api/created-missions/{id}/join", tag = "created-missions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The mission.")),
    responses(
        (status = 201, description = "Joined.", body = ParticipantView),
        (status = 403, description = "`own-mission`: the creator verifies, and does not join.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such mission.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`already-joined` or `full` (capacity reached).", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`mission-over`: its period has ended.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn join(
    State(state): State<CreatedState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<ParticipantView>), ApiError> {
    let id = mission_id(&id)?;
    let mission = find(&state, id).await?;
    if mission.creator == user.user_id {
        return Err(ApiError::forbidden("own-mission", "You created this mission: you verify it, not join it."));
    }
    if today_in(&state, zone(&mission.time_zone)) > mission.ends_on {
        return Err(ApiError::new(StatusCode::GONE, "mission-over", "This mission's period has ended."));
    }
    let now = state.clock.now_millis();
    let mut tx = state.db.pool.begin().await?;
    // The place first: the row update serializes joins, so the count never passes capacity.
    if !store::take_place(&mut tx, id).await? {
        return Err(ApiError::conflict("full", format!("All {} places are taken.", mission.capacity)));
    }
    if !store::add_participant(&mut tx, id, user.user_id, now).await.map_err(ApiError::internal)? {
        return Err(ApiError::conflict("already-joined", "You have joined this mission already."));
    }
    tx.commit().await?;
    let joined = Participant {
        user_id: user.user_id,
        status: Status::Joined,
        proof_text: None,
        joined_at: now,
        submitted_at: None,
    };
    Ok((StatusCode::CREATED, Json(joined.into())))
}

/// A completion.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreatedMissionCompletion)]
pub struct Completion {
    /// What you did, 1 to 1000 characters, not only spaces; line breaks allowed, other control
    /// characters not.
    #[schema(
        min_length = 1,
        max_length = 1000,
        pattern = "^[^\\u0000-\\u0009\\u000B-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u0009\\u000B-\\u001F\\u007F-\\u009F]*$"
    )]
    pub text: String,
}

fn announce(user: Uuid, mission: Uuid, at: DateTime<Utc>) -> anyhow::Result<Envelope> {
    let verified = MissionVerified {
        user_id: user,
        mission_id: format!("created-{mission}"),
        source: MissionSource::Created,
        verified_at: at,
    };
    Ok(Envelope::new(MISSION_VERIFIED, SERVICE, at, &verified)?)
}

#[utoipa::path(post, path = "/api/created-missions/{id}/completions", tag = "created-missions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The mission.")), request_body = Completion,
    responses(
        (status = 201, description = "`completed` (automatic: `MissionVerified` with `source: created` is published) or `submitted` for the creator.", body = ParticipantView),
        (status = 403, description = "`not-joined`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such mission.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`already-submitted` (waiting or completed).", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid-text`, or `not-started` / `mission-over` (completions count within the period).", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn complete(
    State(state): State<CreatedState>,
    user: AuthUser,
    Path(id): Path<String>,
    Json(c): Json<Completion>,
) -> Result<(StatusCode, Json<ParticipantView>), ApiError> {
    let text = c.text.trim();
    if text.is_empty() || text.chars().count() > 1000 || !text_ok(text) {
        return Err(ApiError::unprocessable("invalid-text", "text must be 1 to 1000 characters."));
    }
    let id = mission_id(&id)?;
    let mission = find(&state, id).await?;
    let today = today_in(&state, zone(&mission.time_zone));
    if today < mission.starts_on {
        return Err(ApiError::unprocessable("not-started", format!("This mission starts on {}.", mission.starts_on)));
    }
    if today > mission.ends_on {
        return Err(ApiError::unprocessable("mission-over", "This mission's period has ended."));
    }
    let now = state.clock.now();
    let automatic = mission.verification == Verification::Automatic;
    let to = if automatic { Status::Completed } else { Status::Submitted };
    let mut tx = state.db.pool.begin().await?;
    let Some(before) = store::participant(&mut tx, id, user.user_id).await.map_err(ApiError::internal)? else {
        return Err(ApiError::forbidden("not-joined", "Join the mission first."));
    };
    if !store::submit(&mut tx, id, user.user_id, to, text, now.timestamp_millis()).await? {
        return Err(ApiError::conflict(
            "already-submitted",
            format!("Your completion is {} already.", before.status.as_str()),
        ));
    }
    if automatic {
        let event = announce(user.user_id, id, now).map_err(ApiError::internal)?;
        Outbox::enqueue(&mut tx, topics::MISSIONS_VERIFIED, &user.user_id.to_string(), &event)
            .await
            .map_err(ApiError::internal)?;
    }
    tx.commit().await?;
    if automatic {
        state.outbox.committed();
    }
    let view = Participant {
        status: to,
        proof_text: Some(text.to_owned()),
        submitted_at: Some(now.timestamp_millis()),
        ..before
    };
    Ok((StatusCode::CREATED, Json(view.into())))
}

#[utoipa::path(get, path = "/api/created-missions/{id}/participants", tag = "created-missions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The mission.")),
    responses(
        (status = 200, description = "Everyone who joined (the creator only).", body = [ParticipantView]),
        (status = 403, description = "`not-creator`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such mission.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn participants(
    State(state): State<CreatedState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Vec<ParticipantView>>, ApiError> {
    let id = mission_id(&id)?;
    let mission = find(&state, id).await?;
    if mission.creator != user.user_id {
        return Err(ApiError::forbidden("not-creator", "Only the mission's creator sees its participants."));
    }
    let list = store::participants(&state.db.pool, id).await.map_err(ApiError::internal)?;
    Ok(Json(list.into_iter().map(ParticipantView::from).collect()))
}

async fn decide(
    state: &CreatedState,
    creator: &AuthUser,
    id: Uuid,
    user: Uuid,
    to: Status,
) -> Result<ParticipantView, ApiError> {
    let mission = find(state, id).await?;
    if mission.creator != creator.user_id {
        return Err(ApiError::forbidden("not-creator", "Only the mission's creator verifies completions."));
    }
    let now = state.clock.now();
    let mut tx = state.db.pool.begin().await?;
    let Some(p) = store::participant(&mut tx, id, user).await.map_err(ApiError::internal)? else {
        return Err(ApiError::not_found("unknown-participant", "That person has not joined this mission."));
    };
    if !store::decide(&mut tx, id, user, to, now.timestamp_millis()).await? {
        return Err(ApiError::conflict(
            "nothing-to-decide",
            format!("The completion is {}, not waiting.", p.status.as_str()),
        ));
    }
    // What was decided, as it is now (a resubmission may have landed since the read above).
    let p = store::participant(&mut tx, id, user)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a participant vanished while being decided")))?;
    if to == Status::Completed {
        // The day it counts for is the day it was done.
        let done_at = p.submitted_at.and_then(DateTime::from_timestamp_millis).unwrap_or(now);
        let event = announce(user, id, done_at).map_err(ApiError::internal)?;
        Outbox::enqueue(&mut tx, topics::MISSIONS_VERIFIED, &user.to_string(), &event)
            .await
            .map_err(ApiError::internal)?;
    }
    tx.commit().await?;
    if to == Status::Completed {
        state.outbox.committed();
    }
    Ok(Participant { status: to, ..p }.into())
}

#[utoipa::path(post, path = "/api/created-missions/{id}/participants/{user}/approve", tag = "created-missions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The mission."), ("user" = Uuid, Path, description = "The participant.")),
    responses(
        (status = 200, description = "Completed: `MissionVerified` (`source: created`) is published.", body = ParticipantView),
        (status = 403, description = "`not-creator`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such mission or participant.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`nothing-to-decide`: no completion is waiting.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn approve(
    State(state): State<CreatedState>,
    user: AuthUser,
    Path((id, participant)): Path<(String, String)>,
) -> Result<Json<ParticipantView>, ApiError> {
    let (id, participant) = (mission_id(&id)?, participant_id(&participant)?);
    Ok(Json(decide(&state, &user, id, participant, Status::Completed).await?))
}

#[utoipa::path(post, path = "/api/created-missions/{id}/participants/{user}/reject", tag = "created-missions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The mission."), ("user" = Uuid, Path, description = "The participant.")),
    responses(
        (status = 200, description = "Rejected; the participant may submit again.", body = ParticipantView),
        (status = 403, description = "`not-creator`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such mission or participant.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`nothing-to-decide`: no completion is waiting.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reject(
    State(state): State<CreatedState>,
    user: AuthUser,
    Path((id, participant)): Path<(String, String)>,
) -> Result<Json<ParticipantView>, ApiError> {
    let (id, participant) = (mission_id(&id)?, participant_id(&participant)?);
    Ok(Json(decide(&state, &user, id, participant, Status::Rejected).await?))
}
