-- The embedded event bus: an append-only log with one cursor per (consumer group, topic).
CREATE TABLE bus_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    msg_key TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX bus_events_topic_seq ON bus_events (topic, seq);

CREATE TABLE bus_offsets (
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    last_seq BIGINT NOT NULL,
    PRIMARY KEY (group_id, topic)
);
