-- 001: the clinic's tables and the rules the database itself enforces.
-- Only built-in types and operator classes: the embedded server has no contrib
-- extensions, so the no-overlap rule pairs an int8range of the dentist with the
-- time range instead of using btree_gist.

CREATE TABLE dentists (
    id          bigserial PRIMARY KEY,
    full_name   text NOT NULL CHECK (length(btrim(full_name)) > 0),
    specialty   text,
    email       text,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE patients (
    id          bigserial PRIMARY KEY,
    full_name   text NOT NULL CHECK (length(btrim(full_name)) > 0),
    phone       text UNIQUE,          -- E.164, normalised by the application
    email       text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE services (
    id                    bigserial PRIMARY KEY,
    name                  text NOT NULL UNIQUE,
    duration_minutes      integer NOT NULL CHECK (duration_minutes > 0 AND duration_minutes <= 480),
    price_cents           integer NOT NULL CHECK (price_cents >= 0),
    description           text,
    buffer_before_minutes integer NOT NULL DEFAULT 0 CHECK (buffer_before_minutes >= 0),
    buffer_after_minutes  integer NOT NULL DEFAULT 0 CHECK (buffer_after_minutes >= 0)
);

CREATE TABLE working_hours (
    id          bigserial PRIMARY KEY,
    dentist_id  bigint NOT NULL REFERENCES dentists(id) ON DELETE CASCADE,
    weekday     smallint NOT NULL CHECK (weekday BETWEEN 1 AND 7),   -- ISO: 1 = Monday
    start_time  time NOT NULL,
    end_time    time NOT NULL,
    CHECK (end_time > start_time)
);
CREATE INDEX working_hours_dentist_idx ON working_hours (dentist_id, weekday);

CREATE TABLE time_off (
    id          bigserial PRIMARY KEY,
    dentist_id  bigint NOT NULL REFERENCES dentists(id) ON DELETE CASCADE,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    reason      text,
    CHECK (ends_at > starts_at)
);
CREATE INDEX time_off_dentist_idx ON time_off (dentist_id, starts_at);

CREATE TABLE appointments (
    id          bigserial PRIMARY KEY,
    patient_id  bigint NOT NULL REFERENCES patients(id) ON DELETE RESTRICT,
    dentist_id  bigint NOT NULL REFERENCES dentists(id) ON DELETE RESTRICT,
    service_id  bigint NOT NULL REFERENCES services(id) ON DELETE RESTRICT,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    status      text NOT NULL DEFAULT 'pending'
                CONSTRAINT appointments_status_check
                CHECK (status IN ('pending', 'confirmed', 'cancelled', 'completed', 'no_show')),
    notes       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT appointments_time_check CHECK (ends_at > starts_at),
    -- No two live appointments of one dentist overlap. '[)' lets one visit end
    -- exactly when the next begins.
    CONSTRAINT appointments_no_overlap EXCLUDE USING gist (
        int8range(dentist_id, dentist_id, '[]') WITH &&,
        tstzrange(starts_at, ends_at, '[)') WITH &&
    ) WHERE (status <> 'cancelled')
);
CREATE INDEX appointments_patient_idx ON appointments (patient_id, starts_at);
CREATE INDEX appointments_dentist_idx ON appointments (dentist_id, starts_at);

CREATE FUNCTION touch_updated_at_v1() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END $$;

CREATE TRIGGER appointments_touch_updated_at
    BEFORE UPDATE ON appointments
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at_v1();
