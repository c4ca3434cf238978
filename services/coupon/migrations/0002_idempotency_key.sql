-- The Idempotency-Key a coupon was asked for with travels in CouponIssued and is kept
-- with the row, so a rebuilt issuer answers a retry with the same key with this coupon.
ALTER TABLE coupons ADD COLUMN idempotency_key TEXT;
