-- 008: chairs (operatories) and hygienists.
--
-- A visit holds its provider and, when its service needs one, a chair, each for the visit's
-- time plus the service's buffers (the "held" range, kept by a trigger from the service). The
-- database refuses two live visits in one chair, or with one hygienist, whose held ranges
-- overlap, whoever writes them. Built-in range types only, as for dentists (sql/001).
--
-- A service is performed by a dentist or by a hygienist. A hygienist's visit still names a
-- dentist: the dentist of record, on duty at that time, who examines at the end of a cleaning
-- (general supervision). Only the hygienist and the chair are held by it, so the dentist treats
-- other patients meanwhile: the dentists' no-overlap rule no longer applies to it.

CREATE TABLE operatories (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE hygienists (
    id          bigserial PRIMARY KEY,
    full_name   text NOT NULL CHECK (length(btrim(full_name)) > 0),
    email       text,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The same shapes as working_hours and time_off.
CREATE TABLE hygienist_working_hours (
    id            bigserial PRIMARY KEY,
    hygienist_id  bigint NOT NULL REFERENCES hygienists(id) ON DELETE CASCADE,
    weekday       smallint NOT NULL CHECK (weekday BETWEEN 1 AND 7),   -- ISO: 1 = Monday
    start_time    time NOT NULL,
    end_time      time NOT NULL,
    CHECK (end_time > start_time)
);
CREATE INDEX hygienist_working_hours_idx ON hygienist_working_hours (hygienist_id, weekday);

CREATE TABLE hygienist_time_off (
    id            bigserial PRIMARY KEY,
    hygienist_id  bigint NOT NULL REFERENCES hygienists(id) ON DELETE CASCADE,
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz NOT NULL,
    reason        text,
    CHECK (ends_at > starts_at)
);
CREATE INDEX hygienist_time_off_idx ON hygienist_time_off (hygienist_id, starts_at);

ALTER TABLE services
    ADD COLUMN performed_by text NOT NULL DEFAULT 'dentist'
        CONSTRAINT services_performed_by_check CHECK (performed_by IN ('dentist', 'hygienist')),
    ADD COLUMN needs_operatory boolean NOT NULL DEFAULT true,
    ADD COLUMN recall_interval interval
        CONSTRAINT services_recall_interval_check CHECK (recall_interval > interval '0');

ALTER TABLE appointments
    ADD COLUMN operatory_id bigint REFERENCES operatories(id) ON DELETE RESTRICT,
    ADD COLUMN hygienist_id bigint REFERENCES hygienists(id) ON DELETE RESTRICT,
    ADD COLUMN held_from timestamptz,
    ADD COLUMN held_until timestamptz;
ALTER TABLE slot_holds
    ADD COLUMN operatory_id bigint REFERENCES operatories(id) ON DELETE CASCADE,
    ADD COLUMN hygienist_id bigint REFERENCES hygienists(id) ON DELETE CASCADE,
    ADD COLUMN held_from timestamptz,
    ADD COLUMN held_until timestamptz;

-- The held range is the visit's (or hold's) time plus its service's buffers, always computed
-- here: a writer cannot make it shorter.
CREATE FUNCTION held_range_v1() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT NEW.starts_at - make_interval(mins => sv.buffer_before_minutes),
           NEW.ends_at + make_interval(mins => sv.buffer_after_minutes)
      INTO NEW.held_from, NEW.held_until
      FROM services sv WHERE sv.id = NEW.service_id;
    IF NEW.held_from IS NULL THEN  -- no such service: the foreign key refuses the row anyway
        NEW.held_from := NEW.starts_at;
        NEW.held_until := NEW.ends_at;
    END IF;
    RETURN NEW;
END $$;

-- Existing rows get their held range without announcing a change to anyone.
ALTER TABLE appointments DISABLE TRIGGER USER;
UPDATE appointments a SET held_from = a.starts_at - make_interval(mins => sv.buffer_before_minutes),
                          held_until = a.ends_at + make_interval(mins => sv.buffer_after_minutes)
  FROM services sv WHERE sv.id = a.service_id;
ALTER TABLE appointments ENABLE TRIGGER USER;
UPDATE slot_holds h SET held_from = h.starts_at - make_interval(mins => sv.buffer_before_minutes),
                        held_until = h.ends_at + make_interval(mins => sv.buffer_after_minutes)
  FROM services sv WHERE sv.id = h.service_id;

ALTER TABLE appointments ALTER COLUMN held_from SET NOT NULL, ALTER COLUMN held_until SET NOT NULL;
ALTER TABLE slot_holds ALTER COLUMN held_from SET NOT NULL, ALTER COLUMN held_until SET NOT NULL;

CREATE TRIGGER appointments_held_range
    BEFORE INSERT OR UPDATE OF starts_at, ends_at, service_id, held_from, held_until ON appointments
    FOR EACH ROW EXECUTE FUNCTION held_range_v1();
CREATE TRIGGER slot_holds_held_range
    BEFORE INSERT OR UPDATE OF starts_at, ends_at, service_id, held_from, held_until ON slot_holds
    FOR EACH ROW EXECUTE FUNCTION held_range_v1();

-- A dentist is held by the visits they perform, not by the cleanings they supervise.
ALTER TABLE appointments DROP CONSTRAINT appointments_no_overlap;
ALTER TABLE appointments ADD CONSTRAINT appointments_no_overlap EXCLUDE USING gist (
    int8range(dentist_id, dentist_id, '[]') WITH &&,
    tstzrange(starts_at, ends_at, '[)') WITH &&
) WHERE (status <> 'cancelled' AND hygienist_id IS NULL);
-- Checked in the order created: the dentist's rule first, then the patient's (as before), then
-- the chair's and the hygienist's, so a refusal names the dentist when both are taken.
ALTER TABLE appointments DROP CONSTRAINT appointments_patient_no_overlap;
ALTER TABLE appointments ADD CONSTRAINT appointments_patient_no_overlap EXCLUDE USING gist (
    int8range(patient_id, patient_id, '[]') WITH &&,
    tstzrange(starts_at, ends_at, '[)') WITH &&
) WHERE (status <> 'cancelled');
ALTER TABLE appointments ADD CONSTRAINT appointments_operatory_no_overlap EXCLUDE USING gist (
    int8range(operatory_id, operatory_id, '[]') WITH &&,
    tstzrange(held_from, held_until, '[)') WITH &&
) WHERE (status <> 'cancelled' AND operatory_id IS NOT NULL);
ALTER TABLE appointments ADD CONSTRAINT appointments_hygienist_no_overlap EXCLUDE USING gist (
    int8range(hygienist_id, hygienist_id, '[]') WITH &&,
    tstzrange(held_from, held_until, '[)') WITH &&
) WHERE (status <> 'cancelled' AND hygienist_id IS NOT NULL);
CREATE INDEX appointments_operatory_idx ON appointments (operatory_id, starts_at) WHERE operatory_id IS NOT NULL;
CREATE INDEX appointments_hygienist_idx ON appointments (hygienist_id, starts_at) WHERE hygienist_id IS NOT NULL;

ALTER TABLE slot_holds DROP CONSTRAINT slot_holds_no_overlap;
ALTER TABLE slot_holds ADD CONSTRAINT slot_holds_no_overlap EXCLUDE USING gist (
    int8range(dentist_id, dentist_id, '[]') WITH &&,
    tstzrange(starts_at, ends_at, '[)') WITH &&
) WHERE (hygienist_id IS NULL);
ALTER TABLE slot_holds ADD CONSTRAINT slot_holds_operatory_no_overlap EXCLUDE USING gist (
    int8range(operatory_id, operatory_id, '[]') WITH &&,
    tstzrange(held_from, held_until, '[)') WITH &&
) WHERE (operatory_id IS NOT NULL);
ALTER TABLE slot_holds ADD CONSTRAINT slot_holds_hygienist_no_overlap EXCLUDE USING gist (
    int8range(hygienist_id, hygienist_id, '[]') WITH &&,
    tstzrange(held_from, held_until, '[)') WITH &&
) WHERE (hygienist_id IS NOT NULL);

-- Appointment events: the row (to_jsonb, so operatory_id and hygienist_id are in it), and on an
-- update the chair and hygienist the visit had before.
CREATE FUNCTION appointments_outbox_v2() RETURNS trigger LANGUAGE plpgsql AS $$
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
                    'starts_at', OLD.starts_at, 'ends_at', OLD.ends_at, 'status', OLD.status,
                    'operatory_id', OLD.operatory_id, 'hygienist_id', OLD.hygienist_id)));
        RETURN NEW;
    ELSE
        PERFORM realtime_publish_v1('appointment_deleted', OLD.dentist_id, OLD.patient_id,
            jsonb_build_object('appointment', to_jsonb(OLD)));
        RETURN OLD;
    END IF;
END $$;

DROP TRIGGER appointments_outbox ON appointments;
CREATE TRIGGER appointments_outbox
    AFTER INSERT OR UPDATE OR DELETE ON appointments
    FOR EACH ROW EXECUTE FUNCTION appointments_outbox_v2();
DROP FUNCTION appointments_outbox_v1();

-- availability_changed also names the chair and the hygienist a row is about (null: none).
CREATE FUNCTION availability_outbox_v3() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    cur jsonb;
    old_row jsonb;
    dentist bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN cur := to_jsonb(OLD); ELSE cur := to_jsonb(NEW); END IF;
    dentist := (cur->>'dentist_id')::bigint;
    PERFORM realtime_publish_v1('availability_changed', dentist, NULL,
        jsonb_build_object('dentist_id', dentist, 'source', TG_TABLE_NAME, 'op', lower(TG_OP),
                           'row_id', (cur->>'id')::bigint,
                           'operatory_id', CASE WHEN TG_TABLE_NAME = 'operatories' THEN cur->'id'
                                                ELSE cur->'operatory_id' END,
                           'hygienist_id', CASE WHEN TG_TABLE_NAME = 'hygienists' THEN cur->'id'
                                                ELSE cur->'hygienist_id' END)
        || jsonb_strip_nulls(jsonb_build_object(
               'weekday', cur->'weekday', 'on_date', cur->'on_date', 'starts_at', cur->'starts_at',
               'ends_at', cur->'ends_at', 'expires_at', cur->'expires_at')));
    IF TG_OP = 'UPDATE' THEN
        old_row := to_jsonb(OLD);
        IF (old_row->>'dentist_id') IS DISTINCT FROM (cur->>'dentist_id') THEN
            PERFORM realtime_publish_v1('availability_changed', (old_row->>'dentist_id')::bigint, NULL,
                jsonb_build_object('dentist_id', (old_row->>'dentist_id')::bigint, 'source', TG_TABLE_NAME,
                                   'op', 'update', 'row_id', (old_row->>'id')::bigint,
                                   'operatory_id', old_row->'operatory_id',
                                   'hygienist_id', old_row->'hygienist_id'));
        END IF;
    END IF;
    RETURN NULL;
END $$;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['working_hours', 'time_off', 'date_overrides', 'clinic_closures', 'slot_holds']
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %I', t || '_outbox', t);
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %I'
                       ' FOR EACH ROW EXECUTE FUNCTION availability_outbox_v3()', t || '_outbox', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['operatories', 'hygienists', 'hygienist_working_hours', 'hygienist_time_off']
    LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %I'
                       ' FOR EACH ROW EXECUTE FUNCTION availability_outbox_v3()', t || '_outbox', t);
    END LOOP;
END $$;
DROP FUNCTION availability_outbox_v2();
