-- Roles beyond being a user, granted with `ww admin grant-role`; read at login and at
-- every refresh, so a change takes effect with the next access token.
CREATE TABLE user_roles (
    user_id TEXT NOT NULL REFERENCES users (id),
    role TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, role)
);
