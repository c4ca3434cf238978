-- A campaign is its name and its instance (the resource's uid; '' for campaigns read from
-- files): one deleted and re-created under the same name is a new campaign, whose winners are
-- counted afresh. Definitions and coupons carry the uid; a person's n-th coupon is unique per
-- instance. The coupons table is rebuilt (SQLite cannot drop a table constraint); the same
-- statements run on PostgreSQL, where the first ALTER TABLE takes the table's exclusive lock
-- for the whole migration (one transaction), so no row committed meanwhile is left behind.
ALTER TABLE coupons ADD COLUMN campaign_uid TEXT NOT NULL DEFAULT '';
ALTER TABLE campaigns ADD COLUMN uid TEXT NOT NULL DEFAULT '';

CREATE TABLE coupons_by_instance (
    coupon_id TEXT PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    campaign TEXT NOT NULL,
    campaign_uid TEXT NOT NULL DEFAULT '',
    user_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    day TEXT NOT NULL,
    title TEXT NOT NULL,
    benefit TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    redeemed_at BIGINT,
    idempotency_key TEXT,
    UNIQUE (campaign, campaign_uid, user_id, seq)
);
INSERT INTO coupons_by_instance
    (coupon_id, code, campaign, campaign_uid, user_id, seq, day, title, benefit, issued_at, expires_at, redeemed_at, idempotency_key)
    SELECT coupon_id, code, campaign, campaign_uid, user_id, seq, day, title, benefit, issued_at, expires_at, redeemed_at, idempotency_key
    FROM coupons;
DROP TABLE coupons;
ALTER TABLE coupons_by_instance RENAME TO coupons;
CREATE INDEX coupons_user ON coupons (user_id, issued_at);
CREATE INDEX coupons_campaign_day ON coupons (campaign, campaign_uid, day);
