-- 011: a reminder is of a visit at one time. A visit moved after its reminder went out is reminded
-- of again at its new time (bot/reminders.py); the same time is still reminded of exactly once.
ALTER TABLE reminders ADD COLUMN visit_starts_at timestamptz;
UPDATE reminders r SET visit_starts_at = a.starts_at FROM appointments a WHERE a.id = r.appointment_id;
ALTER TABLE reminders ALTER COLUMN visit_starts_at SET NOT NULL;
ALTER TABLE reminders DROP CONSTRAINT reminders_appointment_id_kind_channel_key;
ALTER TABLE reminders ADD CONSTRAINT reminders_appointment_id_kind_channel_visit_starts_at_key
    UNIQUE (appointment_id, kind, channel, visit_starts_at);

-- A row written without the time (an older worker, psql) reminds of the visit's time as it is now.
CREATE FUNCTION reminders_visit_time_v1() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.visit_starts_at IS NULL THEN
        SELECT starts_at INTO NEW.visit_starts_at FROM appointments WHERE id = NEW.appointment_id;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER reminders_visit_time
    BEFORE INSERT ON reminders
    FOR EACH ROW EXECUTE FUNCTION reminders_visit_time_v1();
