-- 010: the waitlist (ASAP list). bot/waitlist.py offers freed time to the patients who wait for it.
--
-- waitlist_entries: a patient asks to be told if a slot opens for a service, between earliest
-- and latest, with one dentist or any (dentist_id NULL). appointment_id: the visit to move
-- earlier when the slot is taken (NULL: a new booking). conversation_id: the chat to tell (NULL:
-- the patient page only). One waiting entry per patient, service and visit.
CREATE TABLE waitlist_entries (
    id               bigserial PRIMARY KEY,
    patient_id       bigint NOT NULL REFERENCES patients(id) ON DELETE CASCADE,
    service_id       bigint NOT NULL REFERENCES services(id) ON DELETE CASCADE,
    dentist_id       bigint REFERENCES dentists(id) ON DELETE CASCADE,
    earliest         timestamptz NOT NULL,
    latest           timestamptz NOT NULL,
    status           text NOT NULL DEFAULT 'waiting'
                     CHECK (status IN ('waiting', 'offered', 'booked', 'expired', 'withdrawn')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    appointment_id   bigint REFERENCES appointments(id) ON DELETE SET NULL,
    conversation_id  text CHECK (length(conversation_id) BETWEEN 1 AND 200),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (latest > earliest)
);
-- the fair order: the earliest request first, among those still waiting
CREATE INDEX waitlist_entries_waiting_idx ON waitlist_entries (created_at, id) WHERE status = 'waiting';
CREATE UNIQUE INDEX waitlist_entries_one_per_visit ON waitlist_entries
    (patient_id, service_id, coalesce(appointment_id, 0)) WHERE status IN ('waiting', 'offered');

-- waitlist_offers: one freed slot offered to one entry. The entries offered one slot share one
-- slot hold (holder 'waitlist:<first offer id>'); the first to accept books it, the database
-- decides (the visits' no-overlap constraints). status: open, accepted, gone (someone else took
-- it), declined, expired (the hold ran out). chat_told_at: when the entry's chat was told of the
-- offer's latest status (NULL: not yet, or no chat).
CREATE TABLE waitlist_offers (
    id              bigserial PRIMARY KEY,
    entry_id        bigint NOT NULL REFERENCES waitlist_entries(id) ON DELETE CASCADE,
    patient_id      bigint NOT NULL REFERENCES patients(id) ON DELETE CASCADE,
    service_id      bigint NOT NULL REFERENCES services(id) ON DELETE CASCADE,
    dentist_id      bigint NOT NULL REFERENCES dentists(id) ON DELETE CASCADE,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    holder          text NOT NULL CHECK (length(holder) BETWEEN 1 AND 200),
    expires_at      timestamptz NOT NULL,
    status          text NOT NULL DEFAULT 'open'
                    CHECK (status IN ('open', 'accepted', 'gone', 'declined', 'expired')),
    appointment_id  bigint REFERENCES appointments(id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    decided_at      timestamptz,
    chat_told_at    timestamptz,
    UNIQUE (entry_id, dentist_id, starts_at),  -- one slot is offered to one entry once
    CHECK (ends_at > starts_at)
);
CREATE INDEX waitlist_offers_open_idx ON waitlist_offers (expires_at) WHERE status = 'open';
CREATE INDEX waitlist_offers_holder_idx ON waitlist_offers (holder);

ALTER TABLE realtime_events DROP CONSTRAINT realtime_events_type_check;
ALTER TABLE realtime_events ADD CONSTRAINT realtime_events_type_check
    CHECK (type IN ('appointment_created', 'appointment_updated', 'appointment_deleted',
                    'availability_changed', 'reminder_sent', 'waitlist_changed', 'waitlist_offer'));

-- waitlist_changed: an entry was added, changed status or was deleted. Routed to admins, the
-- entry's dentist (when it names one) and its patient; the payload is the entry without its
-- conversation id.
CREATE FUNCTION waitlist_entries_outbox_v1() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r waitlist_entries;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    IF TG_OP = 'UPDATE' AND OLD.status = NEW.status AND OLD.earliest = NEW.earliest
       AND OLD.latest = NEW.latest AND OLD.dentist_id IS NOT DISTINCT FROM NEW.dentist_id THEN
        RETURN NULL;  -- nothing a dashboard shows changed
    END IF;
    PERFORM realtime_publish_v1('waitlist_changed', r.dentist_id, r.patient_id,
        jsonb_build_object('op', lower(TG_OP),
                           'entry', to_jsonb(r) - 'conversation_id' - 'updated_at'));
    RETURN NULL;
END $$;

CREATE TRIGGER waitlist_entries_outbox
    AFTER INSERT OR UPDATE OR DELETE ON waitlist_entries
    FOR EACH ROW EXECUTE FUNCTION waitlist_entries_outbox_v1();

-- waitlist_offer: an offer was made or changed status. For the patient offered only (the outbox
-- row names no dentist; sync/rooms.py gives it to that patient alone); never the holder.
CREATE FUNCTION waitlist_offers_outbox_v1() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status = NEW.status THEN
        RETURN NULL;
    END IF;
    PERFORM realtime_publish_v1('waitlist_offer', NULL, NEW.patient_id,
        jsonb_build_object('offer', to_jsonb(NEW) - 'holder' - 'chat_told_at'));
    RETURN NULL;
END $$;

CREATE TRIGGER waitlist_offers_outbox
    AFTER INSERT OR UPDATE ON waitlist_offers
    FOR EACH ROW EXECUTE FUNCTION waitlist_offers_outbox_v1();
