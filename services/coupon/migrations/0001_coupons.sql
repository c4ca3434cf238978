-- Campaign definitions as their owner published them, and the coupons handed out.
CREATE TABLE campaigns (
    name TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    spec TEXT NOT NULL,
    removed BIGINT NOT NULL DEFAULT 0
);

-- One row per coupon; (campaign, user_id, seq) makes a person's n-th coupon unique, so a
-- redelivered or re-sent CouponIssued event can never become a second row.
CREATE TABLE coupons (
    coupon_id TEXT PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    campaign TEXT NOT NULL,
    user_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    day TEXT NOT NULL,
    title TEXT NOT NULL,
    benefit TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    redeemed_at BIGINT,
    UNIQUE (campaign, user_id, seq)
);
CREATE INDEX coupons_user ON coupons (user_id, issued_at);
CREATE INDEX coupons_campaign_day ON coupons (campaign, day);
