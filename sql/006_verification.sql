-- Every message the clinic sends, and the one-time codes that prove a phone (or email).
--
-- notifications: one row per message, written before it is handed to its sender and updated
-- with what happened (bot/notify.py). `recipient` is E.164 for sms, an address for email.
-- No trigger publishes this table: a body may hold a code, which never reaches a dashboard.
CREATE TABLE notifications (
    id          bigserial PRIMARY KEY,
    channel     text NOT NULL CHECK (channel IN ('sms', 'email')),
    recipient   text NOT NULL CHECK (length(recipient) BETWEEN 3 AND 320),
    body        text NOT NULL CHECK (length(body) BETWEEN 1 AND 10000),
    status      text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'failed')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    kind        text NOT NULL DEFAULT 'message' CHECK (length(kind) BETWEEN 1 AND 40),
    subject     text CHECK (length(subject) <= 200),
    sender      text CHECK (length(sender) <= 40),    -- smtp, http, console
    error       text CHECK (length(error) <= 500),
    CHECK ((status = 'sent') = (sent_at IS NOT NULL))
);
CREATE INDEX notifications_recipient_idx ON notifications (recipient, created_at);
CREATE INDEX notifications_kind_idx ON notifications (kind, created_at);

-- verification_codes: a 6-digit code sent to `recipient` for one `purpose` and `subject` (the
-- chat's conversation id, or a patient-page sign-in attempt). Only an HMAC of the code is kept.
-- A code is live until `expires_at`, for at most `max_tries` wrong guesses; `verified_at` marks
-- the one typed back. `superseded_at` marks a code replaced by a newer one ("resend").
CREATE TABLE verification_codes (
    id             bigserial PRIMARY KEY,
    purpose        text NOT NULL CHECK (purpose IN ('chat', 'patient_sign_in')),
    subject        text NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
    channel        text NOT NULL CHECK (channel IN ('sms', 'email')),
    recipient      text NOT NULL CHECK (length(recipient) BETWEEN 3 AND 320),
    code_hash      text NOT NULL CHECK (length(code_hash) = 64),
    attempts       smallint NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    client         text CHECK (length(client) <= 100),
    notification_id bigint REFERENCES notifications(id) ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    verified_at    timestamptz,
    superseded_at  timestamptz,
    CHECK (expires_at > created_at)
);
CREATE INDEX verification_codes_subject_idx ON verification_codes (purpose, subject, created_at);
CREATE INDEX verification_codes_recipient_idx ON verification_codes (recipient, created_at);
CREATE INDEX verification_codes_client_idx ON verification_codes (client, created_at) WHERE client IS NOT NULL;
