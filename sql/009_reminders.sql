-- 009: reminders of upcoming visits (bot/reminders.py sends them through the notifier).
--
-- reminders: one row per visit, reminder kind and channel, written (status 'claimed') before
-- the message is sent and marked 'sent' with its notification afterwards. The UNIQUE key is the
-- exactly-once rule: a second worker, or the same one after a restart, cannot claim a reminder
-- that already has a row. A claim left 'claimed' or 'failed' (a crash, a refused send) is taken
-- again after REMINDER_RETRY_MINUTES, at most REMINDER_MAX_ATTEMPTS times in all.
CREATE TABLE reminders (
    id               bigserial PRIMARY KEY,
    appointment_id   bigint NOT NULL REFERENCES appointments(id) ON DELETE CASCADE,
    kind             text NOT NULL CHECK (length(kind) BETWEEN 1 AND 40),   -- day_before
    channel          text NOT NULL CHECK (channel IN ('sms', 'email')),
    status           text NOT NULL DEFAULT 'claimed' CHECK (status IN ('claimed', 'sent', 'failed')),
    attempts         smallint NOT NULL DEFAULT 1 CHECK (attempts >= 1),
    notification_id  bigint REFERENCES notifications(id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    claimed_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    UNIQUE (appointment_id, kind, channel),
    CHECK ((status = 'sent') = (sent_at IS NOT NULL))
);
-- the claims a worker may take again (unsent), oldest first
CREATE INDEX reminders_unsent_idx ON reminders (claimed_at) WHERE status <> 'sent';

ALTER TABLE realtime_events DROP CONSTRAINT realtime_events_type_check;
ALTER TABLE realtime_events ADD CONSTRAINT realtime_events_type_check
    CHECK (type IN ('appointment_created', 'appointment_updated', 'appointment_deleted',
                    'availability_changed', 'reminder_sent'));

-- reminder_sent, once, when a reminder becomes sent: routed to the visit's dentist and patient
-- (and admins); the payload names the visit, the kind and the channel, never the body or recipient.
CREATE FUNCTION reminders_outbox_v1() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    a record;
BEGIN
    IF NEW.status = 'sent' AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM 'sent') THEN
        SELECT dentist_id, patient_id INTO a FROM appointments WHERE id = NEW.appointment_id;
        PERFORM realtime_publish_v1('reminder_sent', a.dentist_id, a.patient_id,
            jsonb_build_object('appointment_id', NEW.appointment_id, 'kind', NEW.kind,
                               'channel', NEW.channel));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER reminders_outbox
    AFTER INSERT OR UPDATE ON reminders
    FOR EACH ROW EXECUTE FUNCTION reminders_outbox_v1();
