-- Where each person lives (from UserProfileUpdated events; never asked of the user service).
CREATE TABLE homes (
    user_id TEXT PRIMARY KEY,
    lat DOUBLE PRECISION,
    lon DOUBLE PRECISION,
    time_zone TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- A person's missions for one local date: written once, read by every replica after.
CREATE TABLE assignments (
    user_id TEXT NOT NULL,
    local_date TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    -- JSON: the weather the missions were chosen for (absent: chosen without weather).
    weather TEXT,
    -- JSON: the missions, texts included (a catalog edit does not change a day already given).
    missions TEXT NOT NULL,
    -- catalog | ai
    source TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, local_date)
);

CREATE TABLE verifications (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    mission_id TEXT NOT NULL,
    local_date TEXT NOT NULL,
    -- accepted | pending | rejected
    status TEXT NOT NULL,
    -- automatic | moderator
    review TEXT NOT NULL,
    proof_text TEXT,
    photo_key TEXT,
    photo_type TEXT,
    submitted_at BIGINT NOT NULL,
    decided_at BIGINT,
    decided_by TEXT,
    reason TEXT
);
-- One live (not rejected) proof per mission: concurrent submissions cannot both land.
CREATE UNIQUE INDEX verifications_live ON verifications (user_id, mission_id) WHERE status <> 'rejected';
CREATE INDEX verifications_by_user ON verifications (user_id, submitted_at, id);
CREATE INDEX verifications_by_status ON verifications (status, submitted_at, id);

CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    msg_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
