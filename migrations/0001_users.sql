-- Users and their credentials. Email is stored lower-cased and unique.
CREATE EXTENSION IF NOT EXISTS pgcrypto;

CREATE TABLE users (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email          text NOT NULL,
    password_hash  text NOT NULL,
    name           text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    role           text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    avatar_url     text,
    email_verified boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_lower CHECK (email = lower(email))
);
CREATE UNIQUE INDEX users_email_key ON users (email);
