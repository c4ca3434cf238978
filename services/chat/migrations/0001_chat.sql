-- Rooms, the epochs of each cluster's log, messages under their log offsets, and how far the
-- persister stored each partition (written with the rows, so "stored up to" is never ahead).
CREATE TABLE chat_rooms (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- The log a cluster's offsets belong to. `epoch_no` grows by one at each rotation (a re-created
-- topic, a partition count change), so history orders by (epoch_no, msg_offset).
CREATE TABLE chat_epochs (
    cluster TEXT PRIMARY KEY,
    epoch TEXT NOT NULL,
    epoch_no BIGINT NOT NULL,
    partitions INTEGER NOT NULL,
    rotated_at BIGINT NOT NULL
);

CREATE TABLE chat_messages (
    id TEXT PRIMARY KEY,
    cluster TEXT NOT NULL,
    epoch_no BIGINT NOT NULL,
    room TEXT NOT NULL,
    part INTEGER NOT NULL,
    msg_offset BIGINT NOT NULL,
    user_id TEXT NOT NULL,
    nickname TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE INDEX chat_messages_room ON chat_messages (room, epoch_no, msg_offset);

CREATE TABLE chat_progress (
    cluster TEXT NOT NULL,
    epoch_no BIGINT NOT NULL,
    part INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    PRIMARY KEY (cluster, epoch_no, part)
);
