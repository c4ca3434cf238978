//! Why an issue request did not end in a coupon: the first-come rules' own vocabulary,
//! turned into problem+json once, at the HTTP edge ([`IssueError::into_api`]).

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use platform::ApiError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    /// Before the first opening, between closing and the next opening.
    #[error("not open; opens at {opens_at:?}")]
    NotOpen { opens_at: Option<DateTime<Utc>>, now: DateTime<Utc> },
    #[error("the campaign has ended")]
    Ended,
    /// Today's units are gone (`next`: the next opening), or the campaign total is.
    #[error("sold out")]
    SoldOut { next: Option<DateTime<Utc>>, campaign_total: bool },
    #[error("no mission verified today")]
    NotEligible,
    /// Another request of this person is publishing their coupon right now.
    #[error("issue in progress")]
    InProgress,
    /// The state is being restored; nobody is answered from a partial state.
    #[error("rebuilding")]
    Rebuilding,
    /// Too many requests at once for this campaign.
    #[error("shed")]
    Shed,
    /// The state store cannot be reached or does not accept work now.
    #[error("state store unavailable")]
    BackendUnavailable,
    /// The event certainly did not reach the log; the unit was given back.
    #[error("publish failed")]
    PublishFailed,
    /// The event may or may not have reached the log; the unit stays the person's and the
    /// issuer resolves it (re-sending the same coupon) without them.
    #[error("publish uncertain")]
    PublishUncertain,
    #[error("internal: {0}")]
    Internal(String),
}

impl IssueError {
    /// The metric label of this outcome.
    pub fn label(&self) -> &'static str {
        match self {
            IssueError::NotOpen { .. } => "not-open",
            IssueError::Ended => "ended",
            IssueError::SoldOut { .. } => "sold-out",
            IssueError::NotEligible => "not-eligible",
            IssueError::InProgress => "in-progress",
            IssueError::Rebuilding => "rebuilding",
            IssueError::Shed => "shed",
            IssueError::BackendUnavailable => "engine-unavailable",
            IssueError::PublishFailed => "publish-failed",
            IssueError::PublishUncertain => "publish-uncertain",
            IssueError::Internal(_) => "internal",
        }
    }

    pub fn into_api(self) -> ApiError {
        match self {
            IssueError::NotOpen { opens_at, now } => {
                let wait = opens_at.map_or(60, |t| u64::try_from((t - now).num_seconds()).unwrap_or(0).max(1));
                let err = ApiError::new(StatusCode::TOO_EARLY, "not-open", "The campaign is not open right now.")
                    .retry_after(wait);
                match opens_at {
                    Some(t) => err.with("opensAt", t.to_rfc3339()),
                    None => err,
                }
            }
            IssueError::Ended => ApiError::new(StatusCode::GONE, "campaign-ended", "This campaign has ended.")
                .with("hint", "If you already received a coupon, it is in GET /api/coupons/me."),
            IssueError::SoldOut { next, campaign_total } => {
                let detail = match (campaign_total, next) {
                    (true, _) => "Every coupon of this campaign has been given out.".to_owned(),
                    (false, Some(t)) => {
                        format!("Today's coupons are gone. The next opening is at {}.", t.to_rfc3339())
                    }
                    (false, None) => "Today's coupons are gone, and this was the last day.".to_owned(),
                };
                ApiError::new(StatusCode::GONE, "sold-out", detail)
                    .with("nextOpening", next.map(|t| t.to_rfc3339()))
                    .with("hint", "If you already received a coupon, it is in GET /api/coupons/me.")
            }
            IssueError::NotEligible => ApiError::forbidden(
                "not-eligible",
                "Verify today's mission first: this campaign is for people who completed it today.",
            ),
            IssueError::InProgress => ApiError::unavailable(
                "issue-in-progress",
                "Your coupon is being issued by another request; retry in a moment to receive it.",
                1,
            ),
            IssueError::Rebuilding => {
                ApiError::unavailable("rebuilding", "The issuer is restoring its state; retry in a moment.", 1)
            }
            IssueError::Shed => ApiError::too_many_requests(
                "overloaded",
                "Too many requests for this campaign right now; retry in a moment.",
                1,
            ),
            IssueError::BackendUnavailable => ApiError::unavailable(
                "backend-unavailable",
                "The issuer cannot reach its state store right now; retry in a moment.",
                1,
            ),
            IssueError::PublishFailed => ApiError::unavailable(
                "issue-failed",
                "The coupon could not be issued; nothing was taken. Retry in a moment.",
                1,
            ),
            IssueError::PublishUncertain => ApiError::unavailable(
                "issue-pending",
                "Your coupon is reserved but not confirmed yet; retry and you will get this same coupon.",
                1,
            ),
            IssueError::Internal(e) => ApiError::internal(anyhow::anyhow!(e)),
        }
    }
}

impl From<IssueError> for ApiError {
    fn from(e: IssueError) -> Self {
        e.into_api()
    }
}
