//! The mission API: today's missions, proof uploads, history and streaks, moderation.

use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use platform::ApiError;
use platform::auth::AuthUser;
use platform::events::contracts::{MISSION_VERIFIED, MissionSource, MissionVerified, topics};
use platform::events::{Envelope, Outbox};
use platform::http::{Json, Path, Query};
use platform::roles::Role;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use weather::model::Coordinates;

use crate::catalog::{Conditions, Proof, Review};
use crate::daily::{self, Today};
use crate::store::{self, Source, Status, Verification};
use crate::{MissionState, SERVICE, proof};

/// Longest proof text, in characters.
pub const MAX_TEXT_CHARS: usize = 1000;

type Problem = platform::error::Problem;

fn language(headers: &HeaderMap) -> &'static str {
    let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if accept.trim_start().to_ascii_lowercase().starts_with("ko") { "ko" } else { "en" }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MissionStatus {
    /// Nothing submitted yet.
    Open,
    /// Waiting for a moderator.
    Pending,
    Accepted,
    /// The last proof was rejected by a moderator: submit another.
    Rejected,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MissionView {
    /// `YYYYMMDD-slug`: the day and the mission.
    #[schema(example = "20261126-umbrella-out")]
    pub id: String,
    pub title: String,
    pub description: String,
    pub proof: Proof,
    pub review: Review,
    pub indoor: bool,
    pub status: MissionStatus,
}

/// `GET /api/missions/today`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TodayView {
    /// The local date in `timeZone`.
    pub date: NaiveDate,
    #[schema(example = "Asia/Seoul")]
    pub time_zone: String,
    /// Absent until you set one in your profile (`PATCH /api/users/me`).
    pub home_location: Option<Coordinates>,
    /// The weather the missions were chosen for; absent when chosen without it.
    pub weather: Option<Conditions>,
    pub source: Source,
    /// True when chosen without a home location or weather: a later request, once they are
    /// known, may give other missions. Submitting a proof fixes the day's missions.
    pub provisional: bool,
    /// What the person can do about a provisional answer.
    pub note: Option<String>,
    pub missions: Vec<MissionView>,
}

fn today_view(today: Today, statuses: &[(String, Status)], lang: &str) -> TodayView {
    let status_of = |id: &str| {
        // The newest live one counts; a rejected proof leaves the mission open.
        match statuses.iter().rev().find(|(m, _)| m == id).map(|(_, s)| *s) {
            Some(Status::Accepted) => MissionStatus::Accepted,
            Some(Status::Pending) => MissionStatus::Pending,
            Some(Status::Rejected) => MissionStatus::Rejected,
            None => MissionStatus::Open,
        }
    };
    let note = match (&today.home, today.provisional) {
        (_, false) => None,
        (Some(h), true) if h.location.is_some() => {
            Some("The weather at your home is not available right now; these missions suit any weather.".to_owned())
        }
        _ => Some("Set a home location in your profile to get missions for your weather.".to_owned()),
    };
    let a = today.assignment;
    TodayView {
        date: a.date,
        time_zone: a.time_zone,
        home_location: today.home.and_then(|h| h.location).map(|(lat, lon)| Coordinates { lat, lon }),
        weather: a.weather,
        source: a.source,
        provisional: today.provisional,
        note,
        missions: a
            .missions
            .into_iter()
            .map(|m| MissionView {
                status: status_of(&m.id),
                title: m.title.pick(lang).to_owned(),
                description: m.description.pick(lang).to_owned(),
                id: m.id,
                proof: m.proof,
                review: m.review,
                indoor: m.indoor,
            })
            .collect(),
    }
}

#[utoipa::path(get, path = "/api/missions/today", tag = "missions", security(("bearer" = [])),
    params(("Accept-Language" = Option<String>, Header, description = "`ko…` for Korean texts; English otherwise.")),
    responses((status = 200, description = "Today's missions in your time zone, the same on every request all day once chosen.", body = TodayView)))]
pub async fn today(
    State(state): State<MissionState>,
    user: AuthUser,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let d = &state.daily;
    let lang = language(&headers);
    let home = d.home(user.user_id).await.map_err(ApiError::internal)?;
    let tz = daily::zone(home.as_ref());
    let date = daily::local_date(d.now(), tz);
    let body = match d.view(user.user_id, date, lang) {
        Some(body) => body,
        None => {
            let generation = d.generation();
            let today = d.day(user.user_id, date, home, tz).await.map_err(ApiError::internal)?;
            let statuses = d.statuses(user.user_id, date).await.map_err(ApiError::internal)?;
            let body = bytes::Bytes::from(
                serde_json::to_vec(&today_view(today, &statuses, lang)).map_err(ApiError::internal)?,
            );
            d.keep_view(user.user_id, date, lang, body.clone(), generation);
            body
        }
    };
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response())
}

/// A submitted proof.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerificationView {
    pub id: Uuid,
    pub mission_id: String,
    pub date: NaiveDate,
    pub status: Status,
    pub review: Review,
    pub text: Option<String>,
    /// Where the stripped photo can be fetched (you and moderators); absent without one.
    pub photo_url: Option<String>,
    pub submitted_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    /// A moderator's reason for a rejection.
    pub reason: Option<String>,
}

impl From<Verification> for VerificationView {
    fn from(v: Verification) -> Self {
        Self {
            photo_url: v.photo_key.as_ref().map(|_| format!("/api/missions/verifications/{}/photo", v.id)),
            id: v.id,
            mission_id: v.mission_id,
            date: v.date,
            status: v.status,
            review: v.review,
            text: v.text,
            submitted_at: v.submitted_at,
            decided_at: v.decided_at,
            reason: v.reason,
        }
    }
}

/// The multipart form of a proof (for the OpenAPI document; read by [`read_upload`]). Which
/// parts a mission needs is its `proof` (`photo`, `text` or `photo-and-text`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ProofForm {
    /// JPEG, PNG or WebP (told by its bytes), up to `WW_MISSION_MAX_PHOTO_BYTES`. Location and
    /// other metadata are removed before it is stored.
    #[schema(value_type = Option<String>, format = Binary)]
    photo: Option<Vec<u8>>,
    /// Up to 1000 characters.
    #[schema(max_length = 1000)]
    text: Option<String>,
}

fn announce(v: &Verification) -> anyhow::Result<Envelope> {
    let verified = MissionVerified {
        user_id: v.user_id,
        mission_id: v.mission_id.clone(),
        source: MissionSource::Daily,
        verified_at: v.submitted_at,
    };
    Ok(Envelope::new(MISSION_VERIFIED, SERVICE, v.submitted_at, &verified)?)
}

struct Upload {
    photo: Option<Vec<u8>>,
    text: Option<String>,
}

fn upload_error(e: &MultipartError, max_photo: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "photo-too-large",
            format!("The upload is larger than this service accepts (photos up to {max_photo} bytes)."),
        )
    } else {
        ApiError::bad_request("invalid-upload", format!("The multipart body is malformed: {}", e.body_text()))
    }
}

async fn read_upload(mut form: Multipart, max_photo: usize) -> Result<Upload, ApiError> {
    let mut upload = Upload { photo: None, text: None };
    while let Some(mut field) = form.next_field().await.map_err(|e| upload_error(&e, max_photo))? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "photo" if upload.photo.is_none() => {
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(|e| upload_error(&e, max_photo))? {
                    if bytes.len() + chunk.len() > max_photo {
                        return Err(ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "photo-too-large",
                            format!("Photos may be up to {max_photo} bytes."),
                        ));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                upload.photo = Some(bytes);
            }
            "text" if upload.text.is_none() => {
                let text = field.text().await.map_err(|e| upload_error(&e, max_photo))?;
                if text.chars().count() > MAX_TEXT_CHARS {
                    return Err(ApiError::unprocessable(
                        "invalid-text",
                        format!("text may be up to {MAX_TEXT_CHARS} characters."),
                    ));
                }
                upload.text = Some(text.trim().to_owned()).filter(|t| !t.is_empty());
            }
            "photo" | "text" => {
                return Err(ApiError::unprocessable("invalid-upload", format!("`{name}` is given twice.")));
            }
            _ => {
                return Err(ApiError::unprocessable(
                    "invalid-upload",
                    format!("Unknown part `{name}`: a proof has `photo` and/or `text`."),
                ));
            }
        }
    }
    Ok(upload)
}

#[utoipa::path(post, path = "/api/missions/{id}/verifications", tag = "missions", security(("bearer" = [])),
    params(("id" = String, Path, description = "A mission of today (`YYYYMMDD-slug`).", pattern = "^[0-9]{8}-[a-z0-9-]{1,40}$", example = "20261126-umbrella-out")),
    request_body(content = ProofForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Accepted (automatic review: `MissionVerified` is published) or pending a moderator.", body = VerificationView),
        (status = 400, description = "A malformed multipart body (`invalid-upload`).", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not one of your missions of today.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`already-submitted` (a proof is accepted or pending), `mission-expired` (its day is over) or `mission-changed` (the day's missions were just chosen again: reload them).", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The photo or the upload is too large.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not `multipart/form-data` (`unsupported-media-type`), or the photo is not a JPEG, PNG or WebP image (`unsupported-image`).", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The mission's proof is missing (`photo-required`, `text-required`, `proof-required`), the photo is damaged (`invalid-image`), the text is over 1000 characters (`invalid-text`), or a part is unknown or repeated (`invalid-upload`).", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The photo could not be stored (`proof-store-unavailable`); retry after `Retry-After`.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn verify(
    State(state): State<MissionState>,
    user: AuthUser,
    Path(id): Path<String>,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let unknown = || ApiError::not_found("unknown-mission", "Not one of your missions of today.");
    let date = daily::date_of(&id).ok_or_else(unknown)?;
    let d = &state.daily;
    let home = d.home(user.user_id).await.map_err(ApiError::internal)?;
    let tz = daily::zone(home.as_ref());
    let now = d.now();
    let today = daily::local_date(now, tz);
    if date < today {
        return Err(ApiError::conflict(
            "mission-expired",
            "That mission's day is over: missions are verified on their day.",
        ));
    }
    if date > today {
        return Err(unknown());
    }
    // The day's missions: the stored ones; else the ones chosen now, or — when the person was
    // shown any-weather missions before their home or the weather was known — those. The day is
    // fixed only once the proof is read and checked (below).
    let stored = d.stored(user.user_id, date).await.map_err(ApiError::internal)?;
    let candidate = match stored {
        Some(a) => Some((a, true)),
        None => {
            let now_chosen = d.choose(user.user_id, date, home, tz).await;
            let shown_before = d.from_catalog(user.user_id, date, tz, None);
            [now_chosen.assignment, shown_before]
                .into_iter()
                .find(|a| a.missions.iter().any(|m| m.id == id))
                .map(|a| (a, false))
        }
    };
    let (assignment, fixed) = candidate.ok_or_else(unknown)?;
    let mission = assignment.missions.iter().find(|m| m.id == id).ok_or_else(unknown)?.clone();
    let form = form.map_err(|e| match e {
        MultipartRejection::InvalidBoundary(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Send the proof as multipart/form-data.",
        ),
        other => ApiError::bad_request("invalid-upload", other.body_text()),
    })?;
    let upload = read_upload(form, state.max_photo_bytes).await?;
    if mission.proof.needs_photo() && upload.photo.is_none() {
        return Err(ApiError::unprocessable("photo-required", "This mission's proof is a photo (`photo` part)."));
    }
    if mission.proof.needs_text() && upload.text.is_none() {
        return Err(ApiError::unprocessable("text-required", "This mission's proof is a text (`text` part)."));
    }
    if upload.photo.is_none() && upload.text.is_none() {
        return Err(ApiError::unprocessable("proof-required", "Send a `photo` or a `text`."));
    }
    let photo = match &upload.photo {
        Some(bytes) => Some(proof::clean(bytes).map_err(|e| match e {
            proof::ImageError::Unsupported => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-image",
                "Photos must be JPEG, PNG or WebP.",
            ),
            damaged @ proof::ImageError::Damaged(..) => ApiError::unprocessable("invalid-image", damaged.to_string()),
        })?),
        None => None,
    };
    if !fixed {
        let given = d.give(&assignment).await.map_err(ApiError::internal)?;
        d.forget_statuses(user.user_id, date);
        if !given.missions.iter().any(|m| m.id == id) {
            return Err(ApiError::conflict(
                "mission-changed",
                "Your missions of today were just chosen again (your home location or the weather arrived); reload them.",
            ));
        }
    }
    let automatic = mission.review == Review::Automatic;
    let verification = Verification {
        id: Uuid::now_v7(),
        user_id: user.user_id,
        mission_id: id.clone(),
        date,
        status: if automatic { Status::Accepted } else { Status::Pending },
        review: mission.review,
        text: upload.text,
        photo_key: photo.as_ref().map(|(kind, _)| crate::objects::new_key(now, kind.extension())),
        photo_type: photo.as_ref().map(|(kind, _)| kind.content_type().to_owned()),
        submitted_at: now,
        decided_at: automatic.then_some(now),
        reason: None,
    };
    // On its own task: a client that gives up (or the request timeout) cannot leave a photo
    // without its row, or a row half-written.
    let saving = tokio::spawn(save(state.clone(), verification.clone(), photo));
    let saved = saving.await.map_err(ApiError::internal)?;
    d.forget_statuses(user.user_id, date);
    match saved {
        Saved::Done => {}
        Saved::Taken => {
            return Err(ApiError::conflict(
                "already-submitted",
                "This mission already has a proof that is accepted or waiting for review.",
            ));
        }
        Saved::StoreDown => {
            return Err(ApiError::unavailable(
                "proof-store-unavailable",
                "The photo could not be stored; retry shortly.",
                5,
            ));
        }
        Saved::Failed(e) => return Err(ApiError::internal(e)),
    }
    if automatic {
        state.outbox.committed();
    }
    metrics::counter!("mission_verifications_total", "review" => if automatic { "automatic" } else { "moderator" })
        .increment(1);
    let location = format!("/api/missions/verifications/{}", verification.id);
    let mut response = (StatusCode::CREATED, Json(VerificationView::from(verification))).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

enum Saved {
    Done,
    /// The mission has a live proof already.
    Taken,
    StoreDown,
    Failed(anyhow::Error),
}

/// The photo first (a row never points at nothing), then the row and its event in one
/// transaction; a row that could not be written takes its photo with it — unless the row is
/// there after all (a commit that reported an error it did not have).
async fn save(state: MissionState, v: Verification, photo: Option<(proof::ImageType, Vec<u8>)>) -> Saved {
    if let (Some(key), Some((kind, bytes))) = (&v.photo_key, photo)
        && let Err(e) = state.objects.put(key, kind.content_type(), bytes).await
    {
        tracing::error!(error = %e, "cannot store a proof photo");
        return Saved::StoreDown;
    }
    let pool = &state.daily.db.pool;
    let written = async {
        let mut tx = pool.begin().await?;
        if !store::insert_verification(&mut tx, &v).await? {
            return Ok::<bool, anyhow::Error>(false);
        }
        if v.status == Status::Accepted {
            Outbox::enqueue(&mut tx, topics::MISSIONS_VERIFIED, &v.user_id.to_string(), &announce(&v)?).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
    .await;
    let outcome = match written {
        Ok(true) => return Saved::Done,
        Ok(false) => Saved::Taken,
        Err(e) => {
            let landed = async { store::verification(&mut *pool.acquire().await?, v.id).await }.await;
            if matches!(landed, Ok(Some(_))) {
                return Saved::Done;
            }
            Saved::Failed(e)
        }
    };
    if let Some(key) = &v.photo_key
        && let Err(e) = state.objects.delete(key).await
    {
        tracing::warn!(error = %e, key = %key, "a proof photo without a row was left behind");
    }
    outcome
}

/// Which page of verifications.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The `next` cursor of the previous page.
    #[param(pattern = "^[0-9]{1,15}\\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub before: Option<String>,
    /// 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerificationPage {
    pub verifications: Vec<VerificationView>,
    /// The cursor of the next (older) page; `null` on the last.
    pub next: Option<String>,
}

fn parse_page(q: &PageQuery) -> Result<(Option<(i64, String)>, i64), ApiError> {
    platform::cursor::page(q.before.as_deref(), q.limit, 20, 100)
}

fn page_of(rows: Vec<Verification>, limit: i64) -> VerificationPage {
    let next =
        platform::cursor::next(rows.len(), limit, rows.last().map(|v| (v.submitted_at.timestamp_millis(), v.id)));
    VerificationPage { verifications: rows.into_iter().map(VerificationView::from).collect(), next }
}

#[utoipa::path(get, path = "/api/missions/verifications", tag = "missions", security(("bearer" = [])), params(PageQuery),
    responses(
        (status = 200, description = "Your proofs, newest first.", body = VerificationPage),
        (status = 400, description = "A malformed cursor or limit.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn history(
    State(state): State<MissionState>,
    user: AuthUser,
    Query(q): Query<PageQuery>,
) -> Result<Json<VerificationPage>, ApiError> {
    let (before, limit) = parse_page(&q)?;
    let rows =
        store::page(&state.daily.db.pool, Some(user.user_id), None, before, limit).await.map_err(ApiError::internal)?;
    Ok(Json(page_of(rows, limit)))
}

#[utoipa::path(get, path = "/api/missions/verifications/pending", tag = "missions", security(("bearer" = [])), params(PageQuery),
    responses(
        (status = 200, description = "Proofs waiting for a moderator, newest first (moderators only).", body = VerificationPage),
        (status = 400, description = "A malformed cursor or limit.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a moderator.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn pending(
    State(state): State<MissionState>,
    user: AuthUser,
    Query(q): Query<PageQuery>,
) -> Result<Json<VerificationPage>, ApiError> {
    user.require(Role::Moderator)?;
    let (before, limit) = parse_page(&q)?;
    let rows = store::page(&state.daily.db.pool, None, Some(Status::Pending), before, limit)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(page_of(rows, limit)))
}

/// A moderator's rejection.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rejection {
    /// Shown to the person, 1 to 500 characters, not only spaces.
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    pub reason: String,
}

async fn decide(
    state: &MissionState,
    moderator: &AuthUser,
    id: Uuid,
    verdict: Status,
    reason: Option<&str>,
) -> Result<Verification, ApiError> {
    moderator.require(Role::Moderator)?;
    let d = &state.daily;
    let mut tx = d.db.pool.begin().await?;
    let Some(v) = store::verification(&mut tx, id).await.map_err(ApiError::internal)? else {
        return Err(ApiError::not_found("unknown-verification", "No such verification."));
    };
    if v.user_id == moderator.user_id {
        return Err(ApiError::forbidden("own-verification", "A moderator cannot decide their own proof."));
    }
    let now = d.now();
    if !store::decide(&mut tx, id, verdict, moderator.user_id, reason, now.timestamp_millis()).await? {
        return Err(ApiError::conflict(
            "already-decided",
            format!("This verification is already {}.", v.status.as_str()),
        ));
    }
    let decided = Verification { status: verdict, decided_at: Some(now), reason: reason.map(str::to_owned), ..v };
    if verdict == Status::Accepted {
        let event = announce(&decided).map_err(ApiError::internal)?;
        Outbox::enqueue(&mut tx, topics::MISSIONS_VERIFIED, &decided.user_id.to_string(), &event)
            .await
            .map_err(ApiError::internal)?;
    }
    tx.commit().await?;
    d.forget_statuses(decided.user_id, decided.date);
    if verdict == Status::Accepted {
        state.outbox.committed();
    }
    Ok(decided)
}

#[utoipa::path(post, path = "/api/missions/verifications/{id}/approve", tag = "missions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The verification.")),
    responses(
        (status = 200, description = "Accepted; `MissionVerified` is published with the time the proof was submitted.", body = VerificationView),
        (status = 403, description = "Not a moderator, or your own proof.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such verification.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already decided.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn approve(
    State(state): State<MissionState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<VerificationView>, ApiError> {
    Ok(Json(decide(&state, &user, id, Status::Accepted, None).await?.into()))
}

#[utoipa::path(post, path = "/api/missions/verifications/{id}/reject", tag = "missions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The verification.")), request_body = Rejection,
    responses(
        (status = 200, description = "Rejected; the person may submit another proof.", body = VerificationView),
        (status = 403, description = "Not a moderator, or your own proof.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such verification.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already decided.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No reason, or one over 500 characters.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reject(
    State(state): State<MissionState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<Rejection>,
) -> Result<Json<VerificationView>, ApiError> {
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::unprocessable("invalid-reason", "reason must be 1 to 500 characters."));
    }
    Ok(Json(decide(&state, &user, id, Status::Rejected, Some(reason)).await?.into()))
}

#[utoipa::path(get, path = "/api/missions/verifications/{id}/photo", tag = "missions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The verification.")),
    responses(
        (status = 200, description = "The photo as stored (metadata removed).", content_type = "image/*"),
        (status = 404, description = "No such verification of yours, or it has no photo.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn photo(
    State(state): State<MissionState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let none = || ApiError::not_found("unknown-photo", "No such photo.");
    let mut conn = state.daily.db.pool.acquire().await?;
    let v = store::verification(&mut conn, id).await.map_err(ApiError::internal)?.ok_or_else(none)?;
    drop(conn);
    // Someone else's proof is not even acknowledged to exist, except to moderators.
    if v.user_id != user.user_id && !user.roles.contains(Role::Moderator) {
        return Err(none());
    }
    let (Some(key), Some(kind)) = (v.photo_key, v.photo_type) else { return Err(none()) };
    let bytes = state.objects.get(&key).await.map_err(ApiError::internal)?.ok_or_else(none)?;
    let content_type = HeaderValue::from_str(&kind).map_err(ApiError::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600")),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox")),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        bytes,
    )
        .into_response())
}

/// Consecutive days with a daily mission accepted.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Streak {
    /// Days in a row up to today (or yesterday, when today is not done yet).
    pub current: u32,
    /// The longest run in the last 400 days.
    pub longest: u32,
    pub done_today: bool,
    pub last_day: Option<NaiveDate>,
}

/// The streaks of `days` (newest first, distinct) seen from `today`.
pub fn streak(days: &[NaiveDate], today: NaiveDate) -> Streak {
    let done_today = days.first() == Some(&today);
    let mut longest = 0u32;
    let mut run = 0u32;
    let mut previous: Option<NaiveDate> = None;
    let mut current = None;
    for day in days {
        run = match previous {
            Some(p) if p.pred_opt() == Some(*day) => run + 1,
            _ => {
                if current.is_none() && previous.is_some() {
                    current = Some(run);
                }
                1
            }
        };
        longest = longest.max(run);
        previous = Some(*day);
    }
    let alive = days.first().is_some_and(|d| *d == today || today.pred_opt() == Some(*d));
    let current = if alive { current.unwrap_or(run) } else { 0 };
    Streak { current, longest, done_today, last_day: days.first().copied() }
}

#[utoipa::path(get, path = "/api/missions/streak", tag = "missions", security(("bearer" = [])),
    responses((status = 200, description = "Your streak of days with a mission accepted.", body = Streak)))]
pub async fn streak_of(State(state): State<MissionState>, user: AuthUser) -> Result<Json<Streak>, ApiError> {
    let d = &state.daily;
    let home = d.home(user.user_id).await.map_err(ApiError::internal)?;
    let today = daily::local_date(d.now(), daily::zone(home.as_ref()));
    let days = store::accepted_days(&d.db.pool, user.user_id, 400).await.map_err(ApiError::internal)?;
    Ok(Json(streak(&days, today)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, day).unwrap()
    }

    #[test]
    fn streaks_count_consecutive_days() {
        let s = streak(&[d(26), d(25), d(24), d(20), d(19)], d(26));
        assert_eq!((s.current, s.longest, s.done_today), (3, 3, true));
        let s = streak(&[d(25), d(24), d(20), d(19), d(18), d(17)], d(26));
        assert_eq!((s.current, s.longest, s.done_today), (2, 4, false), "yesterday keeps a streak alive");
        let s = streak(&[d(23), d(22)], d(26));
        assert_eq!((s.current, s.longest), (0, 2), "a missed day ends it");
        let s = streak(&[], d(26));
        assert_eq!((s.current, s.longest, s.last_day), (0, 0, None));
    }
}
