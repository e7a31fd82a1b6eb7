-- What every authenticated request checks about its user (runtime/auth/
-- users.c): a token version, bumped by a password change or reset, so access
-- tokens signed before it (claim "ver" lower) stop working; and disabled_at,
-- set by an operator, which refuses the user's tokens and logins.
ALTER TABLE users
    ADD COLUMN token_version integer NOT NULL DEFAULT 0 CHECK (token_version >= 0),
    ADD COLUMN disabled_at timestamptz;
