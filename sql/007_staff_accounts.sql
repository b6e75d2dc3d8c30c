-- Staff accounts: the front desk and the dentists sign in with an email and a password.
--
-- staff_users: one row per person. Only an Argon2id hash of the password is kept (the CHECK
-- refuses anything else, so a plain or weakly hashed password cannot be stored by mistake).
-- failed_attempts counts consecutive wrong passwords; locked_until is set once they reach
-- STAFF_LOCKOUT_AFTER (bot/accounts.py). A dentist's account names their dentists row; an
-- admin's names none.
-- None of these tables has an outbox trigger: nothing here ever reaches a dashboard.
CREATE TABLE staff_users (
    id                  bigserial PRIMARY KEY,
    email               text NOT NULL CHECK (length(email) BETWEEN 3 AND 254 AND position('@' IN email) > 1),
    full_name           text NOT NULL CHECK (length(btrim(full_name)) BETWEEN 1 AND 200),
    role                text NOT NULL CHECK (role IN ('admin', 'dentist')),
    dentist_id          bigint REFERENCES dentists(id) ON DELETE RESTRICT,
    password_hash       text NOT NULL CHECK (left(password_hash, 10) = '$argon2id$'),
    active              boolean NOT NULL DEFAULT true,
    failed_attempts     integer NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    locked_until        timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT staff_users_dentist_check CHECK ((role = 'dentist') = (dentist_id IS NOT NULL))
);
CREATE UNIQUE INDEX staff_users_email_key ON staff_users (lower(email));

-- staff_sessions: a signed-in browser. The cookie holds a random 256-bit id; only its SHA-256
-- is stored, so a copy of this table signs nobody in. csrf_token is what the page sends back in
-- X-CSRF-Token on every write (worthless without the cookie).
CREATE TABLE staff_sessions (
    id_hash      text PRIMARY KEY CHECK (length(id_hash) = 64),
    user_id      bigint NOT NULL REFERENCES staff_users(id) ON DELETE CASCADE,
    csrf_token   text NOT NULL CHECK (length(csrf_token) BETWEEN 32 AND 100),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    user_agent   text CHECK (length(user_agent) <= 300),
    client       text CHECK (length(client) <= 100),
    CHECK (expires_at > created_at)
);
CREATE INDEX staff_sessions_user_idx ON staff_sessions (user_id);
CREATE INDEX staff_sessions_expiry_idx ON staff_sessions (expires_at);

-- staff_sign_ins: every sign-in attempt, successful or not (never the password). The email is
-- the one typed, known or not: the lockout of an unknown email is counted from here, so a
-- locked answer does not tell which emails have accounts.
CREATE TABLE staff_sign_ins (
    id       bigserial PRIMARY KEY,
    email    text NOT NULL CHECK (length(email) <= 320),
    user_id  bigint REFERENCES staff_users(id) ON DELETE SET NULL,
    success  boolean NOT NULL,
    reason   text NOT NULL CHECK (reason IN ('ok', 'wrong_password', 'unknown_email', 'locked', 'disabled')),
    client   text CHECK (length(client) <= 100),
    at       timestamptz NOT NULL DEFAULT now(),
    CHECK (success = (reason = 'ok'))
);
CREATE INDEX staff_sign_ins_email_idx ON staff_sign_ins (lower(email), at);
