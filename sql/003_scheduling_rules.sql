-- 003: scheduling rules a clinic expects.
--   * per-service minimum notice (NULL: the clinic default from settings)
--   * date overrides: a dentist works other hours on one date, or not at all
--   * clinic closures: a date on which nobody works (public holidays)
--   * slot holds: a proposed slot kept for one conversation for a few minutes
--   * idempotent booking: a request's key books at most once
-- All of them announce availability_changed through the outbox.

ALTER TABLE services ADD COLUMN min_notice_minutes integer CHECK (min_notice_minutes >= 0);

ALTER TABLE appointments ADD COLUMN idempotency_key text;
ALTER TABLE appointments ADD CONSTRAINT appointments_idempotency_key_key UNIQUE (idempotency_key);

-- Rows for one dentist and date replace that weekday's hours on that date: several rows
-- are several blocks; a single row without times means "not working that day".
CREATE TABLE date_overrides (
    id          bigserial PRIMARY KEY,
    dentist_id  bigint NOT NULL REFERENCES dentists(id) ON DELETE CASCADE,
    on_date     date NOT NULL,
    start_time  time,
    end_time    time,
    reason      text,
    CHECK ((start_time IS NULL) = (end_time IS NULL)),
    CHECK (end_time > start_time)
);
CREATE INDEX date_overrides_dentist_idx ON date_overrides (dentist_id, on_date);

CREATE TABLE clinic_closures (
    id       bigserial PRIMARY KEY,
    on_date  date NOT NULL UNIQUE,
    reason   text
);

CREATE TABLE slot_holds (
    id          bigserial PRIMARY KEY,
    dentist_id  bigint NOT NULL REFERENCES dentists(id) ON DELETE CASCADE,
    service_id  bigint NOT NULL REFERENCES services(id) ON DELETE CASCADE,
    holder      text NOT NULL CHECK (length(holder) BETWEEN 1 AND 200),
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at),
    -- Two holds never cover the same time of one dentist (expired ones are swept
    -- in the same transaction before a new hold is taken).
    CONSTRAINT slot_holds_no_overlap EXCLUDE USING gist (
        int8range(dentist_id, dentist_id, '[]') WITH &&,
        tstzrange(starts_at, ends_at, '[)') WITH &&
    )
);
CREATE INDEX slot_holds_expiry_idx ON slot_holds (expires_at);
CREATE INDEX slot_holds_holder_idx ON slot_holds (holder);

-- One function for every table that shapes availability. The payload names the
-- dentist (NULL: clinic-wide), the table, the operation and the row's time fields;
-- never a patient or a free-text reason.
CREATE FUNCTION availability_outbox_v2() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    cur jsonb;
    old_row jsonb;
    dentist bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN cur := to_jsonb(OLD); ELSE cur := to_jsonb(NEW); END IF;
    dentist := (cur->>'dentist_id')::bigint;
    PERFORM realtime_publish_v1('availability_changed', dentist, NULL,
        jsonb_build_object('dentist_id', dentist, 'source', TG_TABLE_NAME, 'op', lower(TG_OP),
                           'row_id', (cur->>'id')::bigint)
        || jsonb_strip_nulls(jsonb_build_object(
               'weekday', cur->'weekday', 'on_date', cur->'on_date', 'starts_at', cur->'starts_at',
               'ends_at', cur->'ends_at', 'expires_at', cur->'expires_at')));
    IF TG_OP = 'UPDATE' THEN
        old_row := to_jsonb(OLD);
        IF (old_row->>'dentist_id') IS DISTINCT FROM (cur->>'dentist_id') THEN
            PERFORM realtime_publish_v1('availability_changed', (old_row->>'dentist_id')::bigint, NULL,
                jsonb_build_object('dentist_id', (old_row->>'dentist_id')::bigint, 'source', TG_TABLE_NAME,
                                   'op', 'update', 'row_id', (old_row->>'id')::bigint));
        END IF;
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER working_hours_outbox ON working_hours;
DROP TRIGGER time_off_outbox ON time_off;
DROP FUNCTION availability_outbox_v1();

CREATE TRIGGER working_hours_outbox AFTER INSERT OR UPDATE OR DELETE ON working_hours
    FOR EACH ROW EXECUTE FUNCTION availability_outbox_v2();
CREATE TRIGGER time_off_outbox AFTER INSERT OR UPDATE OR DELETE ON time_off
    FOR EACH ROW EXECUTE FUNCTION availability_outbox_v2();
CREATE TRIGGER date_overrides_outbox AFTER INSERT OR UPDATE OR DELETE ON date_overrides
    FOR EACH ROW EXECUTE FUNCTION availability_outbox_v2();
CREATE TRIGGER clinic_closures_outbox AFTER INSERT OR UPDATE OR DELETE ON clinic_closures
    FOR EACH ROW EXECUTE FUNCTION availability_outbox_v2();
CREATE TRIGGER slot_holds_outbox AFTER INSERT OR UPDATE OR DELETE ON slot_holds
    FOR EACH ROW EXECUTE FUNCTION availability_outbox_v2();
