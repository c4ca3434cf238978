-- The community board.
CREATE TABLE posts (
    id TEXT PRIMARY KEY,
    author TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    -- Title and body normalized (NFKC, lowercase): what search confirms words against.
    search_text TEXT NOT NULL,
    -- live | hidden (reported by enough people; waits for a moderator) | deleted (by its
    -- author) | removed (by a moderator). Only live posts are listed.
    state TEXT NOT NULL,
    -- Exact: changed in the same transaction as the row they count.
    like_count BIGINT NOT NULL,
    comment_count BIGINT NOT NULL,
    -- Open reports (distinct reporters).
    report_count BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    edited_at BIGINT,
    ended_at BIGINT,
    removed_by TEXT,
    removal_reason TEXT
);
CREATE INDEX posts_listed ON posts (state, created_at, id);
CREATE INDEX posts_by_author ON posts (author, created_at, id);

-- The search index: one row per (term, post). See services/board/src/search.rs.
CREATE TABLE post_terms (
    term TEXT NOT NULL,
    post_id TEXT NOT NULL,
    PRIMARY KEY (term, post_id)
);
CREATE INDEX post_terms_by_post ON post_terms (post_id);

CREATE TABLE comments (
    id TEXT PRIMARY KEY,
    post_id TEXT NOT NULL,
    author TEXT NOT NULL,
    body TEXT NOT NULL,
    -- live | hidden | deleted | removed, as for posts.
    state TEXT NOT NULL,
    report_count BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    edited_at BIGINT,
    ended_at BIGINT,
    removed_by TEXT,
    removal_reason TEXT
);
CREATE INDEX comments_by_post ON comments (post_id, state, created_at, id);

CREATE TABLE likes (
    post_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    liked_at BIGINT NOT NULL,
    PRIMARY KEY (post_id, user_id)
);

-- Whom a person blocked: their posts and comments are not shown to the blocker, and they
-- cannot comment on the blocker's posts.
CREATE TABLE blocks (
    blocker TEXT NOT NULL,
    blocked TEXT NOT NULL,
    blocked_at BIGINT NOT NULL,
    PRIMARY KEY (blocker, blocked)
);

-- One report per person and target; `open` until a moderator removes the target (`actioned`)
-- or dismisses its reports (`dismissed`).
CREATE TABLE reports (
    target_kind TEXT NOT NULL,
    target_id TEXT NOT NULL,
    reporter TEXT NOT NULL,
    reason TEXT NOT NULL,
    note TEXT NOT NULL,
    status TEXT NOT NULL,
    reported_at BIGINT NOT NULL,
    PRIMARY KEY (target_kind, target_id, reporter)
);
CREATE INDEX reports_by_status ON reports (status, target_kind, target_id);

-- Nicknames, from UserRegistered and UserProfileUpdated events (newest wins).
CREATE TABLE authors (
    user_id TEXT PRIMARY KEY,
    nickname TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
