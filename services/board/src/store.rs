//! SQL of the board. Counters (likes, comments, open reports) change in the same transaction
//! as the rows they count, through one `UPDATE ... RETURNING` on the post, so concurrent likes
//! and unlikes serialize on the post's row and the count stays exact.

use std::collections::BTreeSet;

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AnyPool, Row};
use uuid::Uuid;

use crate::search;

/// A statement built piece by piece with numbered parameters (`$1`, `$2`, … on both backends).
#[derive(Default)]
struct Sql {
    text: String,
    args: Vec<Arg>,
}

enum Arg {
    Text(String),
    Int(i64),
}

impl Sql {
    fn new(text: &str) -> Self {
        Sql { text: text.to_owned(), args: Vec::new() }
    }

    fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Binds a text parameter and appends its `$n`.
    fn text(&mut self, value: impl Into<String>) -> &mut Self {
        self.bind(Arg::Text(value.into()))
    }

    fn int(&mut self, value: i64) -> &mut Self {
        self.bind(Arg::Int(value))
    }

    fn bind(&mut self, arg: Arg) -> &mut Self {
        self.args.push(arg);
        let n = self.args.len();
        self.text.push_str(&format!("${n}"));
        self
    }

    fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        let mut q = sqlx::query(&self.text);
        for arg in &self.args {
            q = match arg {
                Arg::Text(v) => q.bind(v.clone()),
                Arg::Int(v) => q.bind(*v),
            };
        }
        q
    }
}

/// Where a post or comment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Live,
    /// Reported by enough people: shown to its author and moderators only until one decides.
    Hidden,
    Deleted,
    Removed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Live => "live",
            State::Hidden => "hidden",
            State::Deleted => "deleted",
            State::Removed => "removed",
        }
    }

    fn parse(s: &str) -> State {
        match s {
            "hidden" => State::Hidden,
            "deleted" => State::Deleted,
            "removed" => State::Removed,
            _ => State::Live,
        }
    }

    /// Not deleted or removed.
    pub fn exists(self) -> bool {
        matches!(self, State::Live | State::Hidden)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Post,
    Comment,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Post => "post",
            Kind::Comment => "comment",
        }
    }

    fn table(self) -> &'static str {
        match self {
            Kind::Post => "posts",
            Kind::Comment => "comments",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Post {
    pub id: Uuid,
    pub author: Uuid,
    pub nickname: Option<String>,
    pub title: String,
    pub body: String,
    pub state: State,
    pub likes: i64,
    pub comments: i64,
    pub liked: bool,
    pub created_at: i64,
    pub edited_at: Option<i64>,
}

fn uuid(r: &AnyRow, column: &str) -> anyhow::Result<Uuid> {
    let raw: String = r.try_get(column)?;
    Ok(Uuid::parse_str(&raw)?)
}

fn decode_post(r: &AnyRow) -> anyhow::Result<Post> {
    let state: String = r.try_get("state")?;
    let liked: i64 = r.try_get("liked")?;
    Ok(Post {
        id: uuid(r, "id")?,
        author: uuid(r, "author")?,
        nickname: r.try_get("nickname")?,
        title: r.try_get("title")?,
        body: r.try_get("body")?,
        state: State::parse(&state),
        likes: r.try_get("like_count")?,
        comments: r.try_get("comment_count")?,
        liked: liked != 0,
        created_at: r.try_get("created_at")?,
        edited_at: r.try_get("edited_at")?,
    })
}

/// `SELECT` of posts as `viewer` sees them (whether they liked each), aliased `p`.
fn select_posts(viewer: Uuid) -> Sql {
    let mut sql = Sql::new(
        "SELECT p.id, p.author, a.nickname, p.title, p.body, p.state, p.like_count, p.comment_count, p.created_at, p.edited_at, \
         CAST(CASE WHEN EXISTS (SELECT 1 FROM likes l WHERE l.post_id = p.id AND l.user_id = ",
    );
    sql.text(viewer.to_string())
        .push(") THEN 1 ELSE 0 END AS BIGINT) AS liked FROM posts p LEFT JOIN authors a ON a.user_id = p.author");
    sql
}

/// Leaves out what `viewer` blocked (`alias` is the table holding `author`).
fn not_blocked(sql: &mut Sql, alias: &str, viewer: Uuid) {
    sql.push(&format!(" AND {alias}.author NOT IN (SELECT b.blocked FROM blocks b WHERE b.blocker = "))
        .text(viewer.to_string())
        .push(")");
}

/// Newest first, before `(at, id)`.
fn before(sql: &mut Sql, alias: &str, cursor: Option<&(i64, String)>) {
    if let Some((at, id)) = cursor {
        sql.push(&format!(" AND ({alias}.created_at < "))
            .int(*at)
            .push(&format!(" OR ({alias}.created_at = "))
            .int(*at)
            .push(&format!(" AND {alias}.id < "))
            .text(id.clone())
            .push("))");
    }
}

/// Rows of the search index, in statements of at most this many rows (well under both
/// backends' parameter limits).
const TERMS_PER_INSERT: usize = 1000;

async fn index(conn: &mut AnyConnection, post: Uuid, terms: &BTreeSet<String>) -> sqlx::Result<()> {
    let terms: Vec<&String> = terms.iter().collect();
    let id = post.to_string();
    for chunk in terms.chunks(TERMS_PER_INSERT) {
        let sql =
            format!("INSERT INTO post_terms (term, post_id) VALUES {}", platform::db::values_rows(chunk.len(), 2));
        let mut q = sqlx::query(&sql);
        for term in chunk {
            q = q.bind((*term).clone()).bind(id.clone());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

async fn unindex(conn: &mut AnyConnection, post: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM post_terms WHERE post_id = $1").bind(post.to_string()).execute(conn).await?;
    Ok(())
}

pub struct NewPost<'a> {
    pub id: Uuid,
    pub author: Uuid,
    pub title: &'a str,
    pub body: &'a str,
    pub at: i64,
}

pub async fn insert_post(conn: &mut AnyConnection, p: &NewPost<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO posts (id, author, title, body, search_text, state, like_count, comment_count, report_count, created_at) \
         VALUES ($1, $2, $3, $4, $5, 'live', 0, 0, 0, $6)",
    )
    .bind(p.id.to_string())
    .bind(p.author.to_string())
    .bind(p.title)
    .bind(p.body)
    .bind(search::searchable(p.title, p.body))
    .bind(p.at)
    .execute(&mut *conn)
    .await?;
    index(conn, p.id, &search::terms(&format!("{}\n{}", p.title, p.body))).await
}

pub async fn post(conn: &mut AnyConnection, id: Uuid, viewer: Uuid) -> anyhow::Result<Option<Post>> {
    let mut sql = select_posts(viewer);
    sql.push(" WHERE p.id = ").text(id.to_string());
    let row = sql.query().fetch_optional(conn).await?;
    row.as_ref().map(decode_post).transpose()
}

/// Which posts a list shows (always live ones, never from people the viewer blocked).
pub struct PostFilter<'a> {
    pub author: Option<Uuid>,
    pub search: Option<&'a search::Query>,
}

pub async fn posts(
    pool: &AnyPool,
    viewer: Uuid,
    filter: &PostFilter<'_>,
    cursor: Option<&(i64, String)>,
    limit: i64,
) -> anyhow::Result<Vec<Post>> {
    let sql = posts_sql(viewer, filter, cursor, limit);
    let rows = sql.query().fetch_all(pool).await?;
    rows.iter().map(decode_post).collect()
}

fn posts_sql(viewer: Uuid, filter: &PostFilter<'_>, cursor: Option<&(i64, String)>, limit: i64) -> Sql {
    let mut sql = select_posts(viewer);
    sql.push(" WHERE p.state = 'live'");
    if let Some(author) = filter.author {
        sql.push(" AND p.author = ").text(author.to_string());
    }
    if let Some(q) = filter.search {
        // Candidates from the index: posts holding every looked-up term.
        sql.push(" AND p.id IN (SELECT t.post_id FROM post_terms t WHERE t.term IN (");
        for (i, term) in q.terms.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.text(term.clone());
        }
        sql.push(") GROUP BY t.post_id HAVING COUNT(*) = ")
            .int(i64::try_from(q.terms.len()).unwrap_or(i64::MAX))
            .push(")");
        // Confirmed: every word as typed, as a substring of the normalized text.
        for word in &q.words {
            sql.push(" AND p.search_text LIKE ").text(search::like_pattern(word)).push(" ESCAPE '\\'");
        }
    }
    not_blocked(&mut sql, "p", viewer);
    before(&mut sql, "p", cursor);
    sql.push(" ORDER BY p.created_at DESC, p.id DESC LIMIT ").int(limit);
    sql
}

/// Locks a post's row for the rest of the transaction (a write that changes nothing, portable
/// where `SELECT ... FOR UPDATE` is not) and reads its text and state.
pub async fn lock_post(conn: &mut AnyConnection, id: Uuid) -> anyhow::Result<Option<(String, String, State)>> {
    let row = sqlx::query("UPDATE posts SET state = state WHERE id = $1 RETURNING title, body, state")
        .bind(id.to_string())
        .fetch_optional(conn)
        .await?;
    row.as_ref()
        .map(|r| {
            let state: String = r.try_get("state")?;
            Ok((r.try_get("title")?, r.try_get("body")?, State::parse(&state)))
        })
        .transpose()
}

/// Replaces a live post's text (and its index rows); false when it is not live.
pub async fn edit_post(conn: &mut AnyConnection, id: Uuid, title: &str, body: &str, at: i64) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE posts SET title = $1, body = $2, search_text = $3, edited_at = $4 WHERE id = $5 AND state = 'live'",
    )
    .bind(title)
    .bind(body)
    .bind(search::searchable(title, body))
    .bind(at)
    .bind(id.to_string())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    unindex(conn, id).await?;
    index(conn, id, &search::terms(&format!("{title}\n{body}"))).await?;
    Ok(true)
}

/// Ends a post or comment that exists (`to`: deleted or removed); false when it had ended.
/// A comment's end is taken off its post's count; a post's end drops its index rows.
pub async fn end(
    conn: &mut AnyConnection,
    kind: Kind,
    id: Uuid,
    to: State,
    moderator: Option<(Uuid, &str)>,
    at: i64,
) -> sqlx::Result<bool> {
    let sql = format!(
        "UPDATE {} SET state = $1, ended_at = $2, removed_by = $3, removal_reason = $4 \
         WHERE id = $5 AND state IN ('live', 'hidden')",
        kind.table()
    );
    let done = sqlx::query(&sql)
        .bind(to.as_str())
        .bind(at)
        .bind(moderator.map(|(m, _)| m.to_string()))
        .bind(moderator.map(|(_, reason)| reason.to_owned()))
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    match kind {
        Kind::Post => unindex(conn, id).await?,
        Kind::Comment => {
            sqlx::query(
                "UPDATE posts SET comment_count = comment_count - 1 WHERE id = (SELECT post_id FROM comments WHERE id = $1)",
            )
            .bind(id.to_string())
            .execute(&mut *conn)
            .await?;
        }
    }
    // Whatever was reported about it is settled: acted on by a moderator, or withdrawn with
    // the author's delete.
    let settled = if moderator.is_some() { "actioned" } else { "withdrawn" };
    settle_reports(conn, kind, id, settled).await?;
    Ok(true)
}

/// Likes (`like`) or unlikes a live post; the post's like count after it, or `None` when the
/// post is not live. Liking twice or unliking what was not liked changes nothing.
pub async fn set_like(
    conn: &mut AnyConnection,
    post: Uuid,
    user: Uuid,
    like: bool,
    at: i64,
) -> sqlx::Result<Option<i64>> {
    let changed = if like {
        sqlx::query("INSERT INTO likes (post_id, user_id, liked_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(post.to_string())
            .bind(user.to_string())
            .bind(at)
            .execute(&mut *conn)
            .await?
            .rows_affected()
    } else {
        sqlx::query("DELETE FROM likes WHERE post_id = $1 AND user_id = $2")
            .bind(post.to_string())
            .bind(user.to_string())
            .execute(&mut *conn)
            .await?
            .rows_affected()
    };
    let delta = match (like, changed) {
        (_, 0) => 0,
        (true, _) => 1,
        (false, _) => -1,
    };
    let row = sqlx::query(
        "UPDATE posts SET like_count = like_count + $1 WHERE id = $2 AND state = 'live' RETURNING like_count",
    )
    .bind(delta)
    .bind(post.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| r.try_get::<i64, _>("like_count")).transpose()
}

#[derive(Debug, Clone)]
pub struct Comment {
    pub id: Uuid,
    pub post_id: Uuid,
    pub author: Uuid,
    pub nickname: Option<String>,
    pub body: String,
    pub state: State,
    pub created_at: i64,
    pub edited_at: Option<i64>,
}

const COMMENT_COLUMNS: &str = "c.id, c.post_id, c.author, a.nickname, c.body, c.state, c.created_at, c.edited_at FROM comments c LEFT JOIN authors a ON a.user_id = c.author";

fn decode_comment(r: &AnyRow) -> anyhow::Result<Comment> {
    let state: String = r.try_get("state")?;
    Ok(Comment {
        id: uuid(r, "id")?,
        post_id: uuid(r, "post_id")?,
        author: uuid(r, "author")?,
        nickname: r.try_get("nickname")?,
        body: r.try_get("body")?,
        state: State::parse(&state),
        created_at: r.try_get("created_at")?,
        edited_at: r.try_get("edited_at")?,
    })
}

/// Counts a comment on a live post; the post's author, or `None` when the post is not live.
pub async fn count_comment(conn: &mut AnyConnection, post: Uuid) -> anyhow::Result<Option<Uuid>> {
    let row = sqlx::query(
        "UPDATE posts SET comment_count = comment_count + 1 WHERE id = $1 AND state = 'live' RETURNING author",
    )
    .bind(post.to_string())
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(|r| uuid(r, "author")).transpose()
}

pub async fn insert_comment(conn: &mut AnyConnection, c: &Comment) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO comments (id, post_id, author, body, state, report_count, created_at) VALUES ($1, $2, $3, $4, 'live', 0, $5)",
    )
    .bind(c.id.to_string())
    .bind(c.post_id.to_string())
    .bind(c.author.to_string())
    .bind(&c.body)
    .bind(c.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn comment(conn: &mut AnyConnection, id: Uuid) -> anyhow::Result<Option<Comment>> {
    let row = sqlx::query(&format!("SELECT {COMMENT_COLUMNS} WHERE c.id = $1"))
        .bind(id.to_string())
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(decode_comment).transpose()
}

/// A post's comments `viewer` may see (live ones; hidden ones too to their authors and to
/// moderators), oldest first, after `(at, id)`.
pub async fn comments(
    pool: &AnyPool,
    post: Uuid,
    viewer: Uuid,
    moderator: bool,
    after: Option<&(i64, String)>,
    limit: i64,
) -> anyhow::Result<Vec<Comment>> {
    let mut sql = Sql::new(&format!("SELECT {COMMENT_COLUMNS} WHERE c.post_id = "));
    sql.text(post.to_string());
    if moderator {
        sql.push(" AND c.state IN ('live', 'hidden')");
    } else {
        sql.push(" AND (c.state = 'live' OR (c.state = 'hidden' AND c.author = ").text(viewer.to_string()).push("))");
    }
    not_blocked(&mut sql, "c", viewer);
    if let Some((at, id)) = after {
        sql.push(" AND (c.created_at > ")
            .int(*at)
            .push(" OR (c.created_at = ")
            .int(*at)
            .push(" AND c.id > ")
            .text(id.clone())
            .push("))");
    }
    sql.push(" ORDER BY c.created_at, c.id LIMIT ").int(limit);
    let rows = sql.query().fetch_all(pool).await?;
    rows.iter().map(decode_comment).collect()
}

/// Replaces a live comment's text; false when it is not live.
pub async fn edit_comment(conn: &mut AnyConnection, id: Uuid, body: &str, at: i64) -> sqlx::Result<bool> {
    let done = sqlx::query("UPDATE comments SET body = $1, edited_at = $2 WHERE id = $3 AND state = 'live'")
        .bind(body)
        .bind(at)
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether `blocker` blocked `blocked`.
pub async fn blocks(conn: &mut AnyConnection, blocker: Uuid, blocked: Uuid) -> sqlx::Result<bool> {
    let row = sqlx::query("SELECT 1 AS one FROM blocks WHERE blocker = $1 AND blocked = $2")
        .bind(blocker.to_string())
        .bind(blocked.to_string())
        .fetch_optional(conn)
        .await?;
    Ok(row.is_some())
}

/// How many people `blocker` blocked.
pub async fn blocks_of(conn: &mut AnyConnection, blocker: Uuid) -> sqlx::Result<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM blocks WHERE blocker = $1")
        .bind(blocker.to_string())
        .fetch_one(conn)
        .await?;
    row.try_get("n")
}

pub async fn block(pool: &AnyPool, blocker: Uuid, blocked: Uuid, at: i64) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO blocks (blocker, blocked, blocked_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(blocker.to_string())
        .bind(blocked.to_string())
        .bind(at)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn unblock(pool: &AnyPool, blocker: Uuid, blocked: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM blocks WHERE blocker = $1 AND blocked = $2")
        .bind(blocker.to_string())
        .bind(blocked.to_string())
        .execute(pool)
        .await?;
    Ok(())
}

/// Whom `blocker` blocked, most recent first.
pub async fn blocked_by(pool: &AnyPool, blocker: Uuid) -> anyhow::Result<Vec<(Uuid, Option<String>, i64)>> {
    let rows = sqlx::query(
        "SELECT b.blocked, a.nickname, b.blocked_at FROM blocks b LEFT JOIN authors a ON a.user_id = b.blocked \
         WHERE b.blocker = $1 ORDER BY b.blocked_at DESC, b.blocked DESC",
    )
    .bind(blocker.to_string())
    .fetch_all(pool)
    .await?;
    rows.iter().map(|r| Ok((uuid(r, "blocked")?, r.try_get("nickname")?, r.try_get("blocked_at")?))).collect()
}

/// The author and state of the post a comment is on.
pub async fn post_of_comment(conn: &mut AnyConnection, comment: Uuid) -> anyhow::Result<Option<(Uuid, State)>> {
    author_and_state(
        conn,
        "SELECT p.author, p.state FROM comments c JOIN posts p ON p.id = c.post_id WHERE c.id = $1",
        comment,
    )
    .await
}

/// The author and state of a post or comment.
pub async fn owner(conn: &mut AnyConnection, kind: Kind, id: Uuid) -> anyhow::Result<Option<(Uuid, State)>> {
    author_and_state(conn, &format!("SELECT author, state FROM {} WHERE id = $1", kind.table()), id).await
}

async fn author_and_state(conn: &mut AnyConnection, sql: &str, id: Uuid) -> anyhow::Result<Option<(Uuid, State)>> {
    let row = sqlx::query(sql).bind(id.to_string()).fetch_optional(conn).await?;
    row.as_ref()
        .map(|r| {
            let state: String = r.try_get("state")?;
            Ok((uuid(r, "author")?, State::parse(&state)))
        })
        .transpose()
}

pub enum Reported {
    /// Counted; the target's state after it (hidden once enough people reported it).
    New(State),
    /// This person had reported it already.
    Again,
    /// The target does not exist (or has ended).
    Gone,
}

/// One person's report of a post or comment.
pub struct Report<'a> {
    pub kind: Kind,
    pub id: Uuid,
    pub reporter: Uuid,
    pub reason: &'a str,
    pub note: &'a str,
    pub at: i64,
}

/// Records a report; at `hide_at` open reports a live target is hidden.
pub async fn report(conn: &mut AnyConnection, r: &Report<'_>, hide_at: i64) -> anyhow::Result<Reported> {
    let Report { kind, id, reporter, reason, note, at } = *r;
    let inserted = sqlx::query(
        "INSERT INTO reports (target_kind, target_id, reporter, reason, note, status, reported_at) \
         VALUES ($1, $2, $3, $4, $5, 'open', $6) ON CONFLICT DO NOTHING",
    )
    .bind(kind.as_str())
    .bind(id.to_string())
    .bind(reporter.to_string())
    .bind(reason)
    .bind(note)
    .bind(at)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(Reported::Again);
    }
    let row = sqlx::query(&format!(
        "UPDATE {} SET report_count = report_count + 1, \
         state = CASE WHEN state = 'live' AND report_count + 1 >= $1 THEN 'hidden' ELSE state END \
         WHERE id = $2 AND state IN ('live', 'hidden') RETURNING state",
        kind.table()
    ))
    .bind(hide_at)
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        Some(r) => Reported::New(State::parse(&r.try_get::<String, _>("state")?)),
        None => Reported::Gone,
    })
}

async fn settle_reports(conn: &mut AnyConnection, kind: Kind, id: Uuid, to: &str) -> sqlx::Result<u64> {
    let done =
        sqlx::query("UPDATE reports SET status = $1 WHERE target_kind = $2 AND target_id = $3 AND status = 'open'")
            .bind(to)
            .bind(kind.as_str())
            .bind(id.to_string())
            .execute(conn)
            .await?;
    Ok(done.rows_affected())
}

/// A moderator keeps the target: its open reports are dismissed and, if hidden, it is shown
/// again. False when the target does not exist (or has ended).
pub async fn dismiss(conn: &mut AnyConnection, kind: Kind, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query(&format!(
        "UPDATE {} SET report_count = 0, state = 'live' WHERE id = $1 AND state IN ('live', 'hidden')",
        kind.table()
    ))
    .bind(id.to_string())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    settle_reports(conn, kind, id, "dismissed").await?;
    Ok(true)
}

/// A reported post or comment, as moderators see it in their queue.
#[derive(Debug, Clone)]
pub struct Flagged {
    pub kind: Kind,
    pub id: Uuid,
    pub reports: i64,
    pub latest_at: i64,
    pub reasons: Vec<String>,
}

/// Targets with open reports, the most recently reported first, before `(at, id)`.
pub async fn queue(pool: &AnyPool, cursor: Option<&(i64, String)>, limit: i64) -> anyhow::Result<Vec<Flagged>> {
    let mut sql = Sql::new(
        "SELECT target_kind, target_id, COUNT(*) AS reports, MAX(reported_at) AS latest_at FROM reports \
         WHERE status = 'open' GROUP BY target_kind, target_id",
    );
    if let Some((at, id)) = cursor {
        sql.push(" HAVING (MAX(reported_at) < ")
            .int(*at)
            .push(" OR (MAX(reported_at) = ")
            .int(*at)
            .push(" AND target_id < ")
            .text(id.clone())
            .push("))");
    }
    sql.push(" ORDER BY latest_at DESC, target_id DESC LIMIT ").int(limit);
    let rows = sql.query().fetch_all(pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let kind: String = r.try_get("target_kind")?;
        let kind = if kind == "comment" { Kind::Comment } else { Kind::Post };
        let id = uuid(r, "target_id")?;
        let reasons = sqlx::query(
            "SELECT DISTINCT reason FROM reports WHERE target_kind = $1 AND target_id = $2 AND status = 'open' ORDER BY reason",
        )
        .bind(kind.as_str())
        .bind(id.to_string())
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>("reason"))
        .collect::<Result<Vec<_>, _>>()?;
        out.push(Flagged { kind, id, reports: r.try_get("reports")?, latest_at: r.try_get("latest_at")?, reasons });
    }
    Ok(out)
}

/// The excerpt moderators see of a flagged target: a post's title, a comment's text.
pub async fn excerpt(pool: &AnyPool, kind: Kind, id: Uuid) -> anyhow::Result<Option<(Uuid, State, String)>> {
    let column = match kind {
        Kind::Post => "title",
        Kind::Comment => "body",
    };
    let row = sqlx::query(&format!("SELECT author, state, {column} AS text FROM {} WHERE id = $1", kind.table()))
        .bind(id.to_string())
        .fetch_optional(pool)
        .await?;
    row.as_ref()
        .map(|r| {
            let state: String = r.try_get("state")?;
            let text: String = r.try_get("text")?;
            Ok((uuid(r, "author")?, State::parse(&state), text.chars().take(200).collect()))
        })
        .transpose()
}

/// Keeps the newest nickname of a person (events may arrive out of order across topics).
pub async fn save_author(pool: &AnyPool, user: Uuid, nickname: &str, at: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO authors (user_id, nickname, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id) DO UPDATE SET nickname = excluded.nickname, updated_at = excluded.updated_at \
         WHERE authors.updated_at <= excluded.updated_at",
    )
    .bind(user.to_string())
    .bind(nickname)
    .bind(at)
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use platform::db::{Database, DatabaseUrl};

    use super::*;

    /// The search reaches posts through the term index, never by reading every post or every
    /// index row (SQLite's plan; PostgreSQL's planner picks by table size, so its tests check
    /// results, and this checks the shape the index makes possible).
    #[tokio::test]
    async fn search_reads_the_term_index_not_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&DatabaseUrl::SqliteDir(dir.path().to_path_buf()), "board", 1, crate::migrator())
            .await
            .unwrap();
        let q = search::query("우산 umbrella").unwrap();
        let sql = posts_sql(Uuid::nil(), &PostFilter { author: None, search: Some(&q) }, None, 20);
        let explained = Sql { text: format!("EXPLAIN QUERY PLAN {}", sql.text), args: sql.args };
        let plan: Vec<String> = explained
            .query()
            .fetch_all(&db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get::<String, _>("detail").unwrap())
            .collect();
        let plan = plan.join("\n");
        assert!(plan.contains("SEARCH t USING"), "the terms are looked up in the index:\n{plan}");
        assert!(!plan.contains("SCAN t"), "no full read of the index:\n{plan}");
    }
}
