//! The board API. Every route needs a token; what a person sees leaves out whom they blocked.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use platform::ApiError;
use platform::auth::AuthUser;
use platform::http::{Json, Path, Query};
use platform::roles::Role;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::search::{self, QueryError};
use crate::store::{self, Comment, Kind, Post, PostFilter, Reported, State as Life};
use crate::{BoardState, Limit};

type Problem = platform::error::Problem;

pub const TITLE_MAX: usize = 100;
pub const POST_MAX: usize = 5000;
pub const COMMENT_MAX: usize = 1000;
pub const NOTE_MAX: usize = 500;
pub const REASON_MAX: usize = 200;
/// People one person may block.
pub const MAX_BLOCKS: i64 = 1000;

fn millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Who wrote something.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = BoardAuthor)]
pub struct Author {
    pub id: Uuid,
    /// From their profile; `null` until the board has heard of it.
    pub nickname: Option<String>,
}

/// Whether a post or comment is shown to everyone.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = BoardVisibility)]
pub enum Visibility {
    Live,
    /// Reported by enough people: shown only to its author and moderators until one decides.
    Hidden,
    /// Deleted by its author or removed by a moderator (shown to moderators only).
    Ended,
}

impl From<Life> for Visibility {
    fn from(s: Life) -> Self {
        match s {
            Life::Live => Visibility::Live,
            Life::Hidden => Visibility::Hidden,
            Life::Deleted | Life::Removed => Visibility::Ended,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = BoardPost)]
pub struct PostView {
    pub id: Uuid,
    pub author: Author,
    pub title: String,
    pub body: String,
    /// Exact: the number of people who like it.
    pub likes: i64,
    /// Exact: comments not deleted or removed.
    pub comments: i64,
    pub liked_by_me: bool,
    pub visibility: Visibility,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
}

impl From<Post> for PostView {
    fn from(p: Post) -> Self {
        Self {
            id: p.id,
            author: Author { id: p.author, nickname: p.nickname },
            title: p.title,
            body: p.body,
            likes: p.likes,
            comments: p.comments,
            liked_by_me: p.liked,
            visibility: p.state.into(),
            created_at: millis(p.created_at),
            edited_at: p.edited_at.map(millis),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = BoardComment)]
pub struct CommentView {
    pub id: Uuid,
    pub post_id: Uuid,
    pub author: Author,
    pub body: String,
    pub visibility: Visibility,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
}

impl From<Comment> for CommentView {
    fn from(c: Comment) -> Self {
        Self {
            id: c.id,
            post_id: c.post_id,
            author: Author { id: c.author, nickname: c.nickname },
            body: c.body,
            visibility: c.state.into(),
            created_at: millis(c.created_at),
            edited_at: c.edited_at.map(millis),
        }
    }
}

/// An id from a path: anything that is not one names nothing that exists.
fn id_of(raw: &str, kind: Kind) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| missing(kind))
}

fn missing(kind: Kind) -> ApiError {
    match kind {
        Kind::Post => ApiError::not_found("unknown-post", "No such post."),
        Kind::Comment => ApiError::not_found("unknown-comment", "No such comment."),
    }
}

/// Counts a write against a limit shared by every replica. Fails open: an unreachable counter
/// store must not stop people writing (logged and counted, as for login limits).
async fn limit(state: &BoardState, what: &str, user: Uuid, limit: Limit) -> Result<(), ApiError> {
    let key = format!("board:{what}:{user}");
    match state.counters.hit(&key, limit.window).await {
        Ok(w) if w.count > limit.count => Err(ApiError::too_many_requests(
            if what == "actions" { "action-limit" } else { "write-limit" },
            format!("You can make {} {what} per {} seconds; try again later.", limit.count, limit.window.as_secs()),
            w.resets_in.as_secs().max(1),
        )),
        Ok(_) => Ok(()),
        Err(e) => {
            metrics::counter!("board_rate_limit_unavailable_total").increment(1);
            tracing::error!(error = %e, "board write limit unavailable; allowing the write");
            Ok(())
        }
    }
}

async fn write_limit(state: &BoardState, user: &AuthUser) -> Result<(), ApiError> {
    limit(state, "writes", user.user_id, state.writes).await
}

/// Likes, unlikes, reports and blocks: each one row, but each a transaction (a like takes the
/// post's row lock), so a person's stream of them is bounded too.
async fn action_limit(state: &BoardState, user: &AuthUser) -> Result<(), ApiError> {
    limit(state, "actions", user.user_id, state.actions).await
}

fn title_of(raw: &str) -> Result<String, ApiError> {
    platform::validate::line(raw, TITLE_MAX).ok_or_else(|| {
        ApiError::unprocessable("invalid-title", format!("title must be 1 to {TITLE_MAX} characters on one line."))
    })
}

fn body_of(raw: &str, max: usize) -> Result<String, ApiError> {
    platform::validate::text(raw, max).ok_or_else(|| {
        ApiError::unprocessable(
            "invalid-text",
            format!(
                "body must be 1 to {max} characters; line breaks and tabs are the only control characters allowed."
            ),
        )
    })
}

/// `POST /api/board/posts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewBoardPost)]
pub struct NewPost {
    /// One line, not only spaces, no control characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        example = "비 오는 날 우산 인증",
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub title: String,
    /// Not only spaces; tabs and line breaks are the only control characters allowed.
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"
    )]
    pub body: String,
}

#[utoipa::path(post, path = "/api/board/posts", tag = "board", security(("bearer" = [])), request_body = NewPost,
    responses(
        (status = 201, description = "Posted.", body = PostView),
        (status = 422, description = "`invalid-title` or `invalid-text`.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`write-limit`: too many posts or writes lately; `Retry-After` says when.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_post(
    State(state): State<BoardState>,
    user: AuthUser,
    Json(new): Json<NewPost>,
) -> Result<(StatusCode, Json<PostView>), ApiError> {
    let title = title_of(&new.title)?;
    let body = body_of(&new.body, POST_MAX)?;
    limit(&state, "posts", user.user_id, state.posts).await?;
    write_limit(&state, &user).await?;
    let id = Uuid::now_v7();
    let mut tx = state.db.pool.begin().await?;
    store::insert_post(
        &mut tx,
        &store::NewPost { id, author: user.user_id, title: &title, body: &body, at: state.clock.now_millis() },
    )
    .await?;
    let post = store::post(&mut tx, id, user.user_id).await.map_err(ApiError::internal)?;
    tx.commit().await?;
    let post = post.ok_or_else(|| ApiError::internal(anyhow::anyhow!("a post vanished as it was written")))?;
    Ok((StatusCode::CREATED, Json(post.into())))
}

/// Which posts, and which page.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PostQuery {
    /// Words to find in titles and bodies (every word, anywhere, any case; Korean and English
    /// alike). It needs a word of two letters or more, or one Korean, Chinese or Japanese
    /// character (422 `invalid-search`); a word of a single Latin letter is only checked beside
    /// others.
    #[param(
        nullable = false,
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$",
        example = "우산"
    )]
    pub q: Option<String>,
    /// Only this person's posts.
    pub author: Option<Uuid>,
    /// The `next` cursor of the previous page.
    #[param(pattern = "^[0-9]{1,15}\\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub before: Option<String>,
    /// 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = BoardPostPage)]
pub struct PostPage {
    pub posts: Vec<PostView>,
    /// The cursor of the next (older) page; `null` on the last.
    pub next: Option<String>,
}

#[utoipa::path(get, path = "/api/board/posts", tag = "board", security(("bearer" = [])), params(PostQuery),
    responses(
        (status = 200, description = "Live posts, newest first, without those of people you blocked.", body = PostPage),
        (status = 400, description = "A malformed cursor, limit or author.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid-search`: empty, over 100 characters or 5 words, or nothing to look up (only single letters or punctuation).", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_posts(
    State(state): State<BoardState>,
    user: AuthUser,
    Query(q): Query<PostQuery>,
) -> Result<Json<PostPage>, ApiError> {
    let (before, limit) = platform::cursor::page(q.before.as_deref(), q.limit, 20, 100)?;
    let search = match q.q.as_deref() {
        None => None,
        Some(raw) => Some(search::query(raw).map_err(|e| {
            let why = match e {
                QueryError::TooLong => format!("q may be up to {} characters.", search::MAX_QUERY_CHARS),
                QueryError::TooManyWords => format!("q may hold up to {} words.", search::MAX_QUERY_WORDS),
                QueryError::Control => "q is one line of text, without control characters.".to_owned(),
                QueryError::TooShort => {
                    "q needs a word of two letters or more, or one Korean, Chinese or Japanese character.".to_owned()
                }
            };
            ApiError::unprocessable("invalid-search", why)
        })?),
    };
    let filter = PostFilter { author: q.author, search: search.as_ref() };
    let rows = store::posts(&state.db.pool, user.user_id, &filter, before.as_ref(), limit)
        .await
        .map_err(ApiError::internal)?;
    let next = platform::cursor::next(rows.len(), limit, rows.last().map(|p| (p.created_at, p.id)));
    Ok(Json(PostPage { posts: rows.into_iter().map(PostView::from).collect(), next }))
}

/// Whether `user` may see a post or comment in `state` written by `author`.
fn visible(user: &AuthUser, author: Uuid, state: Life) -> bool {
    match state {
        Life::Live => true,
        Life::Hidden => author == user.user_id || user.roles.contains(Role::Moderator),
        Life::Deleted | Life::Removed => user.roles.contains(Role::Moderator),
    }
}

async fn find_post(state: &BoardState, user: &AuthUser, id: Uuid) -> Result<Post, ApiError> {
    let mut conn = state.db.pool.acquire().await?;
    match store::post(&mut conn, id, user.user_id).await.map_err(ApiError::internal)? {
        Some(p) if visible(user, p.author, p.state) => Ok(p),
        _ => Err(missing(Kind::Post)),
    }
}

#[utoipa::path(get, path = "/api/board/posts/{id}", tag = "board", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The post.")),
    responses(
        (status = 200, description = "The post.", body = PostView),
        (status = 404, description = "No such post (or deleted, removed, or hidden from you).", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_post(
    State(state): State<BoardState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<PostView>, ApiError> {
    Ok(Json(find_post(&state, &user, id_of(&id, Kind::Post)?).await?.into()))
}

/// The author's own post or comment, or why not: 404 when it does not exist (or has ended),
/// 403 `not-author`.
async fn own(state: &BoardState, user: &AuthUser, kind: Kind, id: Uuid) -> Result<Life, ApiError> {
    let mut conn = state.db.pool.acquire().await?;
    match store::owner(&mut conn, kind, id).await.map_err(ApiError::internal)? {
        Some((author, life)) if life.exists() && visible(user, author, life) => {
            if author == user.user_id {
                Ok(life)
            } else {
                Err(ApiError::forbidden("not-author", "Only its author may change this."))
            }
        }
        _ => Err(missing(kind)),
    }
}

fn under_review() -> ApiError {
    ApiError::conflict("under-review", "Reported by several people: it cannot be edited until a moderator decides.")
}

/// `PATCH /api/board/posts/{id}`: what changes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = BoardPostEdit, min_properties = 1)]
pub struct PostEdit {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub title: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"
    )]
    pub body: Option<String>,
}

#[utoipa::path(patch, path = "/api/board/posts/{id}", tag = "board", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The post.")), request_body = PostEdit,
    responses(
        (status = 200, description = "Edited.", body = PostView),
        (status = 403, description = "`not-author`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such post.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`under-review`: hidden by reports until a moderator decides.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid-title`, `invalid-text`, or `nothing-to-change`.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`write-limit`.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn edit_post(
    State(state): State<BoardState>,
    user: AuthUser,
    Path(id): Path<String>,
    Json(edit): Json<PostEdit>,
) -> Result<Json<PostView>, ApiError> {
    let id = id_of(&id, Kind::Post)?;
    if edit.title.is_none() && edit.body.is_none() {
        return Err(ApiError::unprocessable("nothing-to-change", "Send a title, a body or both."));
    }
    let title = edit.title.as_deref().map(title_of).transpose()?;
    let body = edit.body.as_deref().map(|b| body_of(b, POST_MAX)).transpose()?;
    if own(&state, &user, Kind::Post, id).await? == Life::Hidden {
        return Err(under_review());
    }
    write_limit(&state, &user).await?;
    let mut tx = state.db.pool.begin().await?;
    // Locked while read and written: two edits of different fields at once both land.
    let Some((old_title, old_body, life)) = store::lock_post(&mut tx, id).await.map_err(ApiError::internal)? else {
        return Err(missing(Kind::Post));
    };
    let title = title.unwrap_or(old_title);
    let body = body.unwrap_or(old_body);
    if !store::edit_post(&mut tx, id, &title, &body, state.clock.now_millis()).await? {
        // Hidden or ended since the check above.
        return Err(if life == Life::Hidden { under_review() } else { missing(Kind::Post) });
    }
    let post =
        store::post(&mut tx, id, user.user_id).await.map_err(ApiError::internal)?.ok_or_else(|| missing(Kind::Post))?;
    tx.commit().await?;
    Ok(Json(post.into()))
}

#[utoipa::path(delete, path = "/api/board/posts/{id}", tag = "board", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The post.")),
    responses(
        (status = 204, description = "Deleted (kept, out of sight: a soft delete)."),
        (status = 403, description = "`not-author` (moderators remove with `POST .../removal`).", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such post, or deleted already.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_post(
    State(state): State<BoardState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    end_own(&state, &user, Kind::Post, id_of(&id, Kind::Post)?).await
}

async fn end_own(state: &BoardState, user: &AuthUser, kind: Kind, id: Uuid) -> Result<StatusCode, ApiError> {
    own(state, user, kind, id).await?;
    let mut tx = state.db.pool.begin().await?;
    if !store::end(&mut tx, kind, id, Life::Deleted, None, state.clock.now_millis()).await? {
        return Err(missing(kind));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A like's outcome.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = BoardLike)]
pub struct LikeView {
    pub liked: bool,
    /// The post's like count after this.
    pub likes: i64,
}

async fn set_like(state: &BoardState, user: &AuthUser, id: &str, like: bool) -> Result<Json<LikeView>, ApiError> {
    let id = id_of(id, Kind::Post)?;
    action_limit(state, user).await?;
    let mut tx = state.db.pool.begin().await?;
    let Some(likes) = store::set_like(&mut tx, id, user.user_id, like, state.clock.now_millis()).await? else {
        return Err(missing(Kind::Post));
    };
    tx.commit().await?;
    Ok(Json(LikeView { liked: like, likes }))
}

#[utoipa::path(put, path = "/api/board/posts/{id}/like", tag = "board", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The post.")),
    responses(
        (status = 200, description = "Liked (liking again changes nothing).", body = LikeView),
        (status = 404, description = "No such live post.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`action-limit`: too many likes, reports and blocks lately.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn like(
    State(state): State<BoardState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<LikeView>, ApiError> {
    set_like(&state, &user, &id, true).await
}

#[utoipa::path(delete, path = "/api/board/posts/{id}/like", tag = "board", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The post.")),
    responses(
        (status = 200, description = "Not liked (whether it was or not).", body = LikeView),
        (status = 404, description = "No such live post.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`action-limit`.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn unlike(
    State(state): State<BoardState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<LikeView>, ApiError> {
    set_like(&state, &user, &id, false).await
}

/// `POST /api/board/posts/{id}/comments`, `PATCH /api/board/comments/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = BoardCommentText)]
pub struct CommentText {
    /// Not only spaces; tabs and line breaks are the only control characters allowed.
    #[schema(
        min_length = 1,
        max_length = 1000,
        pattern = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"
    )]
    pub body: String,
}

#[utoipa::path(post, path = "/api/board/posts/{id}/comments", tag = "board", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The post.")), request_body = CommentText,
    responses(
        (status = 201, description = "Commented.", body = CommentView),
        (status = 403, description = "`blocked`: the post's author blocked you.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such live post.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid-text`.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`write-limit`.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_comment(
    State(state): State<BoardState>,
    user: AuthUser,
    Path(id): Path<String>,
    Json(new): Json<CommentText>,
) -> Result<(StatusCode, Json<CommentView>), ApiError> {
    let post = id_of(&id, Kind::Post)?;
    let body = body_of(&new.body, COMMENT_MAX)?;
    write_limit(&state, &user).await?;
    let comment = Comment {
        id: Uuid::now_v7(),
        post_id: post,
        author: user.user_id,
        nickname: None,
        body,
        state: Life::Live,
        created_at: state.clock.now_millis(),
        edited_at: None,
    };
    let mut tx = state.db.pool.begin().await?;
    let Some(post_author) = store::count_comment(&mut tx, post).await.map_err(ApiError::internal)? else {
        return Err(missing(Kind::Post));
    };
    if store::blocks(&mut tx, post_author, user.user_id).await? {
        return Err(ApiError::forbidden("blocked", "The post's author does not take comments from you."));
    }
    store::insert_comment(&mut tx, &comment).await?;
    let saved = store::comment(&mut tx, comment.id).await.map_err(ApiError::internal)?;
    tx.commit().await?;
    let saved = saved.ok_or_else(|| ApiError::internal(anyhow::anyhow!("a comment vanished as it was written")))?;
    Ok((StatusCode::CREATED, Json(saved.into())))
}

/// Which comments.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CommentQuery {
    /// The `next` cursor of the previous page.
    #[param(pattern = "^[0-9]{1,15}\\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub after: Option<String>,
    /// 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = BoardCommentPage)]
pub struct CommentPage {
    pub comments: Vec<CommentView>,
    /// The cursor of the next (newer) page; `null` on the last.
    pub next: Option<String>,
}

#[utoipa::path(get, path = "/api/board/posts/{id}/comments", tag = "board", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The post."), CommentQuery),
    responses(
        (status = 200, description = "Live comments (and hidden ones to their authors and moderators), oldest first, without those of people you blocked.", body = CommentPage),
        (status = 400, description = "A malformed cursor or limit.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such post.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_comments(
    State(state): State<BoardState>,
    user: AuthUser,
    Path(id): Path<String>,
    Query(q): Query<CommentQuery>,
) -> Result<Json<CommentPage>, ApiError> {
    let (after, limit) = platform::cursor::page(q.after.as_deref(), q.limit, 50, 100)?;
    let post = find_post(&state, &user, id_of(&id, Kind::Post)?).await?;
    let moderator = user.roles.contains(Role::Moderator);
    let rows = store::comments(&state.db.pool, post.id, user.user_id, moderator, after.as_ref(), limit)
        .await
        .map_err(ApiError::internal)?;
    let next = platform::cursor::next(rows.len(), limit, rows.last().map(|c| (c.created_at, c.id)));
    Ok(Json(CommentPage { comments: rows.into_iter().map(CommentView::from).collect(), next }))
}

#[utoipa::path(patch, path = "/api/board/comments/{id}", tag = "board", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The comment.")), request_body = CommentText,
    responses(
        (status = 200, description = "Edited.", body = CommentView),
        (status = 403, description = "`not-author`, or `blocked` by the post's author.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such comment, or its post is no longer live.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`under-review`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid-text`.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`write-limit`.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn edit_comment(
    State(state): State<BoardState>,
    user: AuthUser,
    Path(id): Path<String>,
    Json(edit): Json<CommentText>,
) -> Result<Json<CommentView>, ApiError> {
    let id = id_of(&id, Kind::Comment)?;
    let body = body_of(&edit.body, COMMENT_MAX)?;
    if own(&state, &user, Kind::Comment, id).await? == Life::Hidden {
        return Err(under_review());
    }
    write_limit(&state, &user).await?;
    let mut tx = state.db.pool.begin().await?;
    // The post must still take comments from this person.
    match store::post_of_comment(&mut tx, id).await.map_err(ApiError::internal)? {
        Some((_, life)) if life != Life::Live => return Err(missing(Kind::Post)),
        Some((post_author, _)) if store::blocks(&mut tx, post_author, user.user_id).await? => {
            return Err(ApiError::forbidden("blocked", "The post's author does not take comments from you."));
        }
        Some(_) => {}
        None => return Err(missing(Kind::Comment)),
    }
    if !store::edit_comment(&mut tx, id, &body, state.clock.now_millis()).await? {
        return Err(missing(Kind::Comment));
    }
    let saved = store::comment(&mut tx, id).await.map_err(ApiError::internal)?.ok_or_else(|| missing(Kind::Comment))?;
    tx.commit().await?;
    Ok(Json(saved.into()))
}

#[utoipa::path(delete, path = "/api/board/comments/{id}", tag = "board", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The comment.")),
    responses(
        (status = 204, description = "Deleted (a soft delete); the post's comment count drops by one."),
        (status = 403, description = "`not-author`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such comment, or deleted already.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_comment(
    State(state): State<BoardState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    end_own(&state, &user, Kind::Comment, id_of(&id, Kind::Comment)?).await
}

/// Why something is reported.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
#[schema(as = BoardReportReason)]
pub enum Reason {
    Spam,
    Abuse,
    OffTopic,
    Other,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Spam => "spam",
            Reason::Abuse => "abuse",
            Reason::OffTopic => "off-topic",
            Reason::Other => "other",
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewBoardReport)]
pub struct NewReport {
    pub reason: Reason,
    /// What a moderator should know, up to 500 characters.
    #[schema(max_length = 500, pattern = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$")]
    pub note: Option<String>,
}

/// A report, received.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = BoardReportReceipt)]
pub struct ReportReceipt {
    /// `post` or `comment`.
    pub kind: String,
    pub id: Uuid,
    /// True when this person had reported it already (nothing changed).
    pub repeated: bool,
}

async fn report(
    state: &BoardState,
    user: &AuthUser,
    kind: Kind,
    id: &str,
    new: NewReport,
) -> Result<(StatusCode, Json<ReportReceipt>), ApiError> {
    let id = id_of(id, kind)?;
    let note = match new.note.as_deref() {
        None => String::new(),
        Some(raw) => platform::validate::optional_text(raw, NOTE_MAX).ok_or_else(|| {
            ApiError::unprocessable(
                "invalid-note",
                format!("note may be up to {NOTE_MAX} characters; tabs and line breaks are the only control characters allowed."),
            )
        })?,
    };
    action_limit(state, user).await?;
    let mut tx = state.db.pool.begin().await?;
    if kind == Kind::Comment {
        match store::post_of_comment(&mut tx, id).await.map_err(ApiError::internal)? {
            Some((author, life)) if visible(user, author, life) => {}
            _ => return Err(missing(kind)),
        }
    }
    match store::owner(&mut tx, kind, id).await.map_err(ApiError::internal)? {
        Some((author, life)) if life.exists() && visible(user, author, life) => {
            if author == user.user_id {
                return Err(ApiError::forbidden("own-content", "You cannot report what you wrote: delete it."));
            }
        }
        _ => return Err(missing(kind)),
    }
    let at = state.clock.now_millis();
    let row = store::Report { kind, id, reporter: user.user_id, reason: new.reason.as_str(), note: &note, at };
    let outcome = store::report(&mut tx, &row, state.hide_at).await.map_err(ApiError::internal)?;
    let (status, repeated) = match outcome {
        Reported::New(life) => {
            if life == Life::Hidden {
                metrics::counter!("board_hidden_by_reports_total", "kind" => kind.as_str()).increment(1);
            }
            (StatusCode::CREATED, false)
        }
        Reported::Again => (StatusCode::OK, true),
        Reported::Gone => return Err(missing(kind)),
    };
    tx.commit().await?;
    Ok((status, Json(ReportReceipt { kind: kind.as_str().to_owned(), id, repeated })))
}

#[utoipa::path(post, path = "/api/board/posts/{id}/reports", tag = "board", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The post.")), request_body = NewReport,
    responses(
        (status = 201, description = "Reported. Enough reports from different people hide the post until a moderator decides.", body = ReportReceipt),
        (status = 200, description = "You had reported it already.", body = ReportReceipt),
        (status = 403, description = "`own-content`: you wrote it (delete it instead).", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such post.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid-note`.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`action-limit`.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn report_post(
    State(state): State<BoardState>,
    user: AuthUser,
    Path(id): Path<String>,
    Json(new): Json<NewReport>,
) -> Result<(StatusCode, Json<ReportReceipt>), ApiError> {
    report(&state, &user, Kind::Post, &id, new).await
}

#[utoipa::path(post, path = "/api/board/comments/{id}/reports", tag = "board", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The comment.")), request_body = NewReport,
    responses(
        (status = 201, description = "Reported.", body = ReportReceipt),
        (status = 200, description = "You had reported it already.", body = ReportReceipt),
        (status = 403, description = "`own-content`: you wrote it (delete it instead).", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such comment.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid-note`.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`action-limit`.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn report_comment(
    State(state): State<BoardState>,
    user: AuthUser,
    Path(id): Path<String>,
    Json(new): Json<NewReport>,
) -> Result<(StatusCode, Json<ReportReceipt>), ApiError> {
    report(&state, &user, Kind::Comment, &id, new).await
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = BoardBlock)]
pub struct BlockView {
    pub user: Author,
    pub blocked_at: DateTime<Utc>,
}

#[utoipa::path(get, path = "/api/board/blocks", tag = "board", security(("bearer" = [])),
    responses((status = 200, description = "Whom you blocked, most recent first.", body = [BlockView])))]
pub async fn blocks(State(state): State<BoardState>, user: AuthUser) -> Result<Json<Vec<BlockView>>, ApiError> {
    let rows = store::blocked_by(&state.db.pool, user.user_id).await.map_err(ApiError::internal)?;
    Ok(Json(
        rows.into_iter()
            .map(|(id, nickname, at)| BlockView { user: Author { id, nickname }, blocked_at: millis(at) })
            .collect(),
    ))
}

fn person(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found("unknown-user", "That is not a person's id."))
}

#[utoipa::path(put, path = "/api/board/blocks/{user}", tag = "board", security(("bearer" = [])),
    params(("user" = Uuid, Path, description = "The person to block.")),
    responses(
        (status = 204, description = "Blocked (again: nothing changes): their posts and comments are hidden from you, and they cannot comment on yours."),
        (status = 404, description = "Not a person's id.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`self-block`, or `too-many-blocks` (1000).", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`action-limit`.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn block(
    State(state): State<BoardState>,
    user: AuthUser,
    Path(other): Path<String>,
) -> Result<StatusCode, ApiError> {
    let other = person(&other)?;
    if other == user.user_id {
        return Err(ApiError::unprocessable("self-block", "You cannot block yourself."));
    }
    action_limit(&state, &user).await?;
    let mut conn = state.db.pool.acquire().await?;
    if !store::blocks(&mut conn, user.user_id, other).await?
        && store::blocks_of(&mut conn, user.user_id).await? >= MAX_BLOCKS
    {
        return Err(ApiError::unprocessable(
            "too-many-blocks",
            format!("You can block up to {MAX_BLOCKS} people; unblock someone first."),
        ));
    }
    drop(conn);
    store::block(&state.db.pool, user.user_id, other, state.clock.now_millis()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/board/blocks/{user}", tag = "board", security(("bearer" = [])),
    params(("user" = Uuid, Path, description = "The person to unblock.")),
    responses(
        (status = 204, description = "Not blocked (whether they were or not)."),
        (status = 404, description = "Not a person's id.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn unblock(
    State(state): State<BoardState>,
    user: AuthUser,
    Path(other): Path<String>,
) -> Result<StatusCode, ApiError> {
    store::unblock(&state.db.pool, user.user_id, person(&other)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A reported post or comment waiting for a moderator.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = BoardFlagged)]
pub struct FlaggedView {
    /// `post` or `comment`.
    pub kind: String,
    pub id: Uuid,
    pub author: Uuid,
    pub visibility: Visibility,
    /// A post's title or a comment's text, up to 200 characters.
    pub excerpt: String,
    /// Open reports (distinct people).
    pub reports: i64,
    pub reasons: Vec<String>,
    pub latest_report_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = BoardFlaggedPage)]
pub struct FlaggedPage {
    pub items: Vec<FlaggedView>,
    /// The cursor of the next page; `null` on the last.
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct QueueQuery {
    /// The `next` cursor of the previous page.
    #[param(pattern = "^[0-9]{1,15}\\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub before: Option<String>,
    /// 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/board/reports", tag = "board", security(("bearer" = [])), params(QueueQuery),
    responses(
        (status = 200, description = "What people reported and no moderator decided yet, most recently reported first (moderators).", body = FlaggedPage),
        (status = 400, description = "A malformed cursor or limit.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden-role`: moderators only.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn queue(
    State(state): State<BoardState>,
    user: AuthUser,
    Query(q): Query<QueueQuery>,
) -> Result<Json<FlaggedPage>, ApiError> {
    user.require(Role::Moderator)?;
    let (before, limit) = platform::cursor::page(q.before.as_deref(), q.limit, 20, 100)?;
    let flagged = store::queue(&state.db.pool, before.as_ref(), limit).await.map_err(ApiError::internal)?;
    let next = platform::cursor::next(flagged.len(), limit, flagged.last().map(|f| (f.latest_at, f.id)));
    let mut items = Vec::with_capacity(flagged.len());
    for f in flagged {
        let Some((author, life, excerpt)) =
            store::excerpt(&state.db.pool, f.kind, f.id).await.map_err(ApiError::internal)?
        else {
            continue;
        };
        items.push(FlaggedView {
            kind: f.kind.as_str().to_owned(),
            id: f.id,
            author,
            visibility: life.into(),
            excerpt,
            reports: f.reports,
            reasons: f.reasons,
            latest_report_at: millis(f.latest_at),
        });
    }
    Ok(Json(FlaggedPage { items, next }))
}

/// A moderator's removal.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = BoardRemoval)]
pub struct Removal {
    /// Why, for the record: one line, 1 to 200 characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub reason: String,
}

async fn remove(
    state: &BoardState,
    user: &AuthUser,
    kind: Kind,
    id: &str,
    removal: Removal,
) -> Result<StatusCode, ApiError> {
    user.require(Role::Moderator)?;
    let id = id_of(id, kind)?;
    let reason = platform::validate::line(&removal.reason, REASON_MAX).ok_or_else(|| {
        ApiError::unprocessable("invalid-reason", format!("reason must be 1 to {REASON_MAX} characters on one line."))
    })?;
    let mut tx = state.db.pool.begin().await?;
    if !store::end(&mut tx, kind, id, Life::Removed, Some((user.user_id, &reason)), state.clock.now_millis()).await? {
        return Err(missing(kind));
    }
    tx.commit().await?;
    metrics::counter!("board_removed_total", "kind" => kind.as_str()).increment(1);
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/board/posts/{id}/removal", tag = "board", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The post.")), request_body = Removal,
    responses(
        (status = 204, description = "Removed; its open reports are closed as acted on."),
        (status = 403, description = "`forbidden-role`: moderators only.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such post, or it ended already.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid-reason`.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn remove_post(
    State(state): State<BoardState>,
    user: AuthUser,
    Path(id): Path<String>,
    Json(removal): Json<Removal>,
) -> Result<StatusCode, ApiError> {
    remove(&state, &user, Kind::Post, &id, removal).await
}

#[utoipa::path(post, path = "/api/board/comments/{id}/removal", tag = "board", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The comment.")), request_body = Removal,
    responses(
        (status = 204, description = "Removed; the post's comment count drops by one."),
        (status = 403, description = "`forbidden-role`: moderators only.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such comment, or it ended already.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid-reason`.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn remove_comment(
    State(state): State<BoardState>,
    user: AuthUser,
    Path(id): Path<String>,
    Json(removal): Json<Removal>,
) -> Result<StatusCode, ApiError> {
    remove(&state, &user, Kind::Comment, &id, removal).await
}

async fn dismiss(state: &BoardState, user: &AuthUser, kind: Kind, id: &str) -> Result<StatusCode, ApiError> {
    user.require(Role::Moderator)?;
    let id = id_of(id, kind)?;
    let mut tx = state.db.pool.begin().await?;
    if !store::dismiss(&mut tx, kind, id).await? {
        return Err(missing(kind));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/board/posts/{id}/dismissal", tag = "board", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The post.")),
    responses(
        (status = 204, description = "Kept: its open reports are dismissed and, if hidden, it is shown again."),
        (status = 403, description = "`forbidden-role`: moderators only.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such post, or it ended.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn dismiss_post(
    State(state): State<BoardState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    dismiss(&state, &user, Kind::Post, &id).await
}

#[utoipa::path(post, path = "/api/board/comments/{id}/dismissal", tag = "board", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The comment.")),
    responses(
        (status = 204, description = "Kept: its open reports are dismissed and, if hidden, it is shown again."),
        (status = 403, description = "`forbidden-role`: moderators only.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such comment, or it ended.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn dismiss_comment(
    State(state): State<BoardState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    dismiss(&state, &user, Kind::Comment, &id).await
}
