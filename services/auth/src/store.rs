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
}

pub async fn refresh_by_hash(conn: &mut AnyConnection, hash: &str) -> sqlx::Result<Option<RefreshRow>> {
    let row = sqlx::query(
        "SELECT t.session_id, s.user_id, t.expires_at, t.used_at, s.revoked_at \
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

pub async fn revoke_session(conn: &mut AnyConnection, session_id: Uuid, now: i64, reason: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE id = $3 AND revoked_at IS NULL")
        .bind(now)
        .bind(reason)
        .bind(session_id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}
