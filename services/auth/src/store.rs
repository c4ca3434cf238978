//! SQL of the auth service.

use sqlx::{AnyConnection, AnyPool, Row};
use uuid::Uuid;

pub struct UserRow {
    pub id: Uuid,
    pub password_hash: String,
}

pub async fn email_taken(pool: &AnyPool, email: &str) -> sqlx::Result<bool> {
    Ok(sqlx::query("SELECT 1 FROM users WHERE email = $1").bind(email).fetch_optional(pool).await?.is_some())
}

pub async fn insert_user(
    conn: &mut AnyConnection,
    id: Uuid,
    email: &str,
    password_hash: &str,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)")
        .bind(id.to_string())
        .bind(email)
        .bind(password_hash)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn user_by_email(pool: &AnyPool, email: &str) -> sqlx::Result<Option<UserRow>> {
    let row =
        sqlx::query("SELECT id, password_hash FROM users WHERE email = $1").bind(email).fetch_optional(pool).await?;
    Ok(row.and_then(|r| {
        let id: String = r.get(0);
        Some(UserRow { id: Uuid::parse_str(&id).ok()?, password_hash: r.get(1) })
    }))
}

pub async fn insert_session(conn: &mut AnyConnection, id: Uuid, user_id: Uuid, now: i64) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO sessions (id, user_id, created_at) VALUES ($1, $2, $3)")
        .bind(id.to_string())
        .bind(user_id.to_string())
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn insert_refresh(
    conn: &mut AnyConnection,
    hash: &str,
    session_id: Uuid,
    now: i64,
    expires_at: i64,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(hash)
        .bind(session_id.to_string())
        .bind(now)
        .bind(expires_at)
        .execute(conn)
        .await?;
    Ok(())
}

pub struct RefreshRow {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub expires_at: i64,
    pub used: bool,
    pub session_revoked: bool,
    /// When the session (the login) started, epoch milliseconds.
    pub session_started: i64,
}

pub async fn refresh_by_hash(conn: &mut AnyConnection, hash: &str) -> sqlx::Result<Option<RefreshRow>> {
    let row = sqlx::query(
        "SELECT t.session_id, s.user_id, t.expires_at, t.used_at, s.revoked_at, s.created_at \
         FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1",
    )
    .bind(hash)
    .fetch_optional(conn)
    .await?;
    Ok(row.and_then(|r| {
        let session: String = r.get(0);
        let user: String = r.get(1);
        Some(RefreshRow {
            session_id: Uuid::parse_str(&session).ok()?,
            user_id: Uuid::parse_str(&user).ok()?,
            expires_at: r.get(2),
            used: r.get::<Option<i64>, _>(3).is_some(),
            session_revoked: r.get::<Option<i64>, _>(4).is_some(),
            session_started: r.get(5),
        })
    }))
}

/// Marks a token used; false when someone else already did (a reuse).
pub async fn mark_used(conn: &mut AnyConnection, hash: &str, now: i64) -> sqlx::Result<bool> {
    let done = sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL")
        .bind(now)
        .bind(hash)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Revokes a session; false when it already was (or does not exist).
pub async fn revoke_session(conn: &mut AnyConnection, session_id: Uuid, now: i64, reason: &str) -> sqlx::Result<bool> {
    let done =
        sqlx::query("UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE id = $3 AND revoked_at IS NULL")
            .bind(now)
            .bind(reason)
            .bind(session_id.to_string())
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// The sessions of `user_id` that are not revoked yet.
pub async fn live_sessions(conn: &mut AnyConnection, user_id: Uuid) -> sqlx::Result<Vec<Uuid>> {
    let rows = sqlx::query("SELECT id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL")
        .bind(user_id.to_string())
        .fetch_all(conn)
        .await?;
    Ok(rows.iter().filter_map(|r| Uuid::parse_str(&r.get::<String, _>(0)).ok()).collect())
}

pub struct AccountRow {
    pub email: String,
    pub password_hash: String,
}

pub async fn user_by_id(pool: &AnyPool, user_id: Uuid) -> sqlx::Result<Option<AccountRow>> {
    let row = sqlx::query("SELECT email, password_hash FROM users WHERE id = $1")
        .bind(user_id.to_string())
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|r| AccountRow { email: r.get(0), password_hash: r.get(1) }))
}

pub async fn set_password(conn: &mut AnyConnection, user_id: Uuid, password_hash: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(password_hash)
        .bind(user_id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// The role names granted to `user_id`.
pub async fn roles_of(conn: &mut AnyConnection, user_id: Uuid) -> sqlx::Result<Vec<String>> {
    let rows = sqlx::query("SELECT role FROM user_roles WHERE user_id = $1 ORDER BY role")
        .bind(user_id.to_string())
        .fetch_all(conn)
        .await?;
    Ok(rows.iter().map(|r| r.get::<String, _>(0)).collect())
}

/// Grants `role` to the account with `email`; `None` when there is no such account,
/// `Some(false)` when it already had the role.
pub async fn grant_role(pool: &AnyPool, email: &str, role: &str, now: i64) -> sqlx::Result<Option<bool>> {
    let Some(user_id) = user_id_by_email(pool, email).await? else { return Ok(None) };
    let done = sqlx::query(
        "INSERT INTO user_roles (user_id, role, granted_at) VALUES ($1, $2, $3) ON CONFLICT (user_id, role) DO NOTHING",
    )
    .bind(user_id)
    .bind(role)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(Some(done.rows_affected() == 1))
}

/// Revokes `role`; `None` when there is no such account, `Some(false)` when it did not have it.
pub async fn revoke_role(pool: &AnyPool, email: &str, role: &str) -> sqlx::Result<Option<bool>> {
    let Some(user_id) = user_id_by_email(pool, email).await? else { return Ok(None) };
    let done = sqlx::query("DELETE FROM user_roles WHERE user_id = $1 AND role = $2")
        .bind(user_id)
        .bind(role)
        .execute(pool)
        .await?;
    Ok(Some(done.rows_affected() == 1))
}

async fn user_id_by_email(pool: &AnyPool, email: &str) -> sqlx::Result<Option<String>> {
    let row = sqlx::query("SELECT id FROM users WHERE email = $1").bind(email).fetch_optional(pool).await?;
    Ok(row.map(|r| r.get(0)))
}
