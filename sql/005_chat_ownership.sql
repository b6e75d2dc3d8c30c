-- Who booked what through the chat, and limits the database itself enforces.
--
-- chat_bookings: which conversation (Rasa sender id) and which client address booked a visit
-- while not signed in. An anonymous chat may list, move and cancel exactly the visits recorded
-- here for its own conversation id; the action server checks that against the sender of the
-- current request, never against slots in the tracker. It also counts bookings per
-- conversation and per client address for the flood limits. No trigger publishes this table:
-- a conversation id is a credential for that chat and never reaches a dashboard.
CREATE TABLE chat_bookings (
    appointment_id  bigint PRIMARY KEY REFERENCES appointments(id) ON DELETE CASCADE,
    conversation_id text NOT NULL CHECK (length(conversation_id) BETWEEN 1 AND 200),
    client          text CHECK (length(client) <= 100),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chat_bookings_conversation_idx ON chat_bookings (conversation_id, created_at);
CREATE INDEX chat_bookings_client_idx ON chat_bookings (client, created_at) WHERE client IS NOT NULL;

-- The client address a hold was taken from (NULL: not from a chat, or unknown), so one client
-- cannot hold half the clinic's week through many silent conversations.
ALTER TABLE slot_holds ADD COLUMN client text CHECK (length(client) <= 100);
CREATE INDEX slot_holds_client_idx ON slot_holds (client) WHERE client IS NOT NULL;

-- One patient is never in two chairs at once: no two live visits of one patient overlap,
-- whoever writes them (chat, dashboards, psql). Built-in range types only, as for dentists.
ALTER TABLE appointments ADD CONSTRAINT appointments_patient_no_overlap EXCLUDE USING gist (
    int8range(patient_id, patient_id, '[]') WITH &&,
    tstzrange(starts_at, ends_at, '[)') WITH &&
) WHERE (status <> 'cancelled');
