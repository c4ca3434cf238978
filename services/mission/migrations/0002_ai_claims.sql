-- The AI writer's claim on a person's day: one replica writes it, once (a failed day is not
-- retried; the catalog answers instead).
CREATE TABLE ai_claims (
    user_id TEXT NOT NULL,
    local_date TEXT NOT NULL,
    claimed_by TEXT NOT NULL,
    claimed_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, local_date)
);
