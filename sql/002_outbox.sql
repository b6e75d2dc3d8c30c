-- 002: the outbox. Every change to appointments, working_hours and time_off,
-- whoever makes it, writes one realtime_events row in the same transaction and
-- NOTIFYs the channel `realtime_events` with a small {"type", "id"} message.
-- Listeners treat the notification as a signal only and read the rows.

CREATE TABLE realtime_events (
    id          bigserial PRIMARY KEY,
    type        text NOT NULL CHECK (type IN ('appointment_created', 'appointment_updated',
                                              'appointment_deleted', 'availability_changed')),
    dentist_id  bigint,          -- NULL: clinic-wide
    patient_id  bigint,          -- NULL for availability events: they carry no patient data
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX realtime_events_created_idx ON realtime_events (created_at);

CREATE FUNCTION realtime_publish_v1(
    p_type text, p_dentist bigint, p_patient bigint, p_payload jsonb
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint;
BEGIN
    INSERT INTO realtime_events (type, dentist_id, patient_id, payload)
    VALUES (p_type, p_dentist, p_patient, p_payload)
    RETURNING id INTO new_id;
    PERFORM pg_notify('realtime_events', json_build_object('type', p_type, 'id', new_id)::text);
    RETURN new_id;
END $$;

-- Appointments: the payload is the row as it now is (as it was, for a delete);
-- an update also names the previous dentist, patient, time and status, so the
-- dentist or patient a visit moved away from is told too.
CREATE FUNCTION appointments_outbox_v1() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM realtime_publish_v1('appointment_created', NEW.dentist_id, NEW.patient_id,
            jsonb_build_object('appointment', to_jsonb(NEW)));
        RETURN NEW;
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM realtime_publish_v1('appointment_updated', NEW.dentist_id, NEW.patient_id,
            jsonb_build_object(
                'appointment', to_jsonb(NEW),
                'previous', jsonb_build_object(
                    'dentist_id', OLD.dentist_id, 'patient_id', OLD.patient_id,
                    'starts_at', OLD.starts_at, 'ends_at', OLD.ends_at, 'status', OLD.status)));
        RETURN NEW;
    ELSE
        PERFORM realtime_publish_v1('appointment_deleted', OLD.dentist_id, OLD.patient_id,
            jsonb_build_object('appointment', to_jsonb(OLD)));
        RETURN OLD;
    END IF;
END $$;

CREATE TRIGGER appointments_outbox
    AFTER INSERT OR UPDATE OR DELETE ON appointments
    FOR EACH ROW EXECUTE FUNCTION appointments_outbox_v1();

-- Working hours and time off: availability_changed, naming the dentist, the
-- table and the operation; for time off, the affected range. No patient data.
CREATE FUNCTION availability_outbox_v1() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
    extra jsonb := '{}'::jsonb;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    IF TG_TABLE_NAME = 'time_off' THEN
        extra := jsonb_build_object('starts_at', r.starts_at, 'ends_at', r.ends_at);
    ELSE
        extra := jsonb_build_object('weekday', r.weekday);
    END IF;
    PERFORM realtime_publish_v1('availability_changed', r.dentist_id, NULL,
        jsonb_build_object('dentist_id', r.dentist_id, 'source', TG_TABLE_NAME,
                           'op', lower(TG_OP), 'row_id', r.id) || extra);
    -- A row moved from one dentist to another changes both diaries.
    IF TG_OP = 'UPDATE' AND OLD.dentist_id IS DISTINCT FROM NEW.dentist_id THEN
        PERFORM realtime_publish_v1('availability_changed', OLD.dentist_id, NULL,
            jsonb_build_object('dentist_id', OLD.dentist_id, 'source', TG_TABLE_NAME,
                               'op', 'update', 'row_id', OLD.id));
    END IF;
    RETURN r;
END $$;

CREATE TRIGGER working_hours_outbox
    AFTER INSERT OR UPDATE OR DELETE ON working_hours
    FOR EACH ROW EXECUTE FUNCTION availability_outbox_v1();

CREATE TRIGGER time_off_outbox
    AFTER INSERT OR UPDATE OR DELETE ON time_off
    FOR EACH ROW EXECUTE FUNCTION availability_outbox_v1();
