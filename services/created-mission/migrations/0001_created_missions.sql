-- Missions people create for others.
CREATE TABLE created_missions (
    id TEXT PRIMARY KEY,
    creator TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    -- The period, inclusive, as local dates in time_zone.
    starts_on TEXT NOT NULL,
    ends_on TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    -- creator | automatic
    verification TEXT NOT NULL,
    capacity INTEGER NOT NULL,
    -- People who joined: never above capacity (checked in the same UPDATE that counts a join).
    joined INTEGER NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX created_missions_by_creator ON created_missions (creator, created_at, id);
CREATE INDEX created_missions_by_end ON created_missions (ends_on, created_at, id);

CREATE TABLE participants (
    mission_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    -- joined | submitted | completed | rejected
    status TEXT NOT NULL,
    proof_text TEXT,
    joined_at BIGINT NOT NULL,
    submitted_at BIGINT,
    decided_at BIGINT,
    PRIMARY KEY (mission_id, user_id)
);
CREATE INDEX participants_by_user ON participants (user_id, joined_at);

CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    msg_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
