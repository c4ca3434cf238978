-- Profiles, created from UserRegistered events and edited by their owner.
CREATE TABLE profiles (
    user_id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    nickname TEXT NOT NULL,
    home_lat DOUBLE PRECISION,
    home_lon DOUBLE PRECISION,
    time_zone TEXT NOT NULL,
    units TEXT NOT NULL,
    language TEXT NOT NULL,
    notifications TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    msg_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
