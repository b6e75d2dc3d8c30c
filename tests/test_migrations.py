"""Applying every migration from zero gives the expected schema; re-running is a no-op.

The expected schema is written out here, from what sql/ promises (README, "Architecture"), not
read from bot.migrate or the files: a migration that drops a constraint or a trigger, renames a
column or is left out fails this test. A new migration means adding it to MIGRATIONS and what it
creates to the tables below.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bot.migrate import SQL_DIR, MigrationError, migrate

MIGRATIONS = ["001_schema.sql", "002_outbox.sql", "003_scheduling_rules.sql", "004_catalogue_events.sql",
              "005_chat_ownership.sql", "006_verification.sql", "007_staff_accounts.sql",
              "008_chairs_and_hygienists.sql", "009_reminders.sql", "010_waitlist.sql",
              "011_reminder_per_time.sql", "012_calendar_feeds.sql"]

# table -> column -> type, "?" when NULL is allowed
COLUMNS = {
    "dentists": {"id": "bigint", "full_name": "text", "specialty": "text?", "email": "text?",
                 "active": "boolean", "created_at": "timestamptz"},
    "patients": {"id": "bigint", "full_name": "text", "phone": "text?", "email": "text?",
                 "created_at": "timestamptz"},
    "services": {"id": "bigint", "name": "text", "duration_minutes": "integer", "price_cents": "integer",
                 "description": "text?", "buffer_before_minutes": "integer", "buffer_after_minutes": "integer",
                 "min_notice_minutes": "integer?", "performed_by": "text", "needs_operatory": "boolean",
                 "recall_interval": "interval?"},
    "working_hours": {"id": "bigint", "dentist_id": "bigint", "weekday": "smallint", "start_time": "time",
                      "end_time": "time"},
    "time_off": {"id": "bigint", "dentist_id": "bigint", "starts_at": "timestamptz", "ends_at": "timestamptz",
                 "reason": "text?"},
    "appointments": {"id": "bigint", "patient_id": "bigint", "dentist_id": "bigint", "service_id": "bigint",
                     "starts_at": "timestamptz", "ends_at": "timestamptz", "status": "text", "notes": "text?",
                     "created_at": "timestamptz", "updated_at": "timestamptz", "idempotency_key": "text?",
                     "operatory_id": "bigint?", "hygienist_id": "bigint?", "held_from": "timestamptz",
                     "held_until": "timestamptz"},
    "date_overrides": {"id": "bigint", "dentist_id": "bigint", "on_date": "date", "start_time": "time?",
                       "end_time": "time?", "reason": "text?"},
    "clinic_closures": {"id": "bigint", "on_date": "date", "reason": "text?"},
    "slot_holds": {"id": "bigint", "dentist_id": "bigint", "service_id": "bigint", "holder": "text",
                   "starts_at": "timestamptz", "ends_at": "timestamptz", "expires_at": "timestamptz",
                   "created_at": "timestamptz", "client": "text?", "operatory_id": "bigint?", "hygienist_id": "bigint?",
                   "held_from": "timestamptz", "held_until": "timestamptz"},
    "chat_bookings": {"appointment_id": "bigint", "conversation_id": "text", "client": "text?",
                      "created_at": "timestamptz"},
    "realtime_events": {"id": "bigint", "type": "text", "dentist_id": "bigint?", "patient_id": "bigint?",
                        "payload": "jsonb", "created_at": "timestamptz"},
    "notifications": {"id": "bigint", "channel": "text", "recipient": "text", "body": "text", "status": "text",
                      "created_at": "timestamptz", "sent_at": "timestamptz?", "kind": "text", "subject": "text?",
                      "sender": "text?", "error": "text?"},
    "verification_codes": {"id": "bigint", "purpose": "text", "subject": "text", "channel": "text",
                           "recipient": "text", "code_hash": "text", "attempts": "smallint", "client": "text?",
                           "notification_id": "bigint?", "created_at": "timestamptz", "expires_at": "timestamptz",
                           "verified_at": "timestamptz?", "superseded_at": "timestamptz?"},
    # staff accounts (007); no trigger on them: TRIGGERS below names none
    "staff_users": {"id": "bigint", "email": "text", "full_name": "text", "role": "text", "dentist_id": "bigint?",
                    "password_hash": "text", "active": "boolean", "failed_attempts": "integer",
                    "locked_until": "timestamptz?", "created_at": "timestamptz", "password_changed_at": "timestamptz"},
    "staff_sessions": {"id_hash": "text", "user_id": "bigint", "csrf_token": "text", "created_at": "timestamptz",
                       "last_seen_at": "timestamptz", "expires_at": "timestamptz", "user_agent": "text?",
                       "client": "text?"},
    "staff_sign_ins": {"id": "bigint", "email": "text", "user_id": "bigint?", "success": "boolean", "reason": "text",
                       "client": "text?", "at": "timestamptz"},
    # chairs and hygienists (008), the hygienists' hours and time off in the dentists' shapes
    "operatories": {"id": "bigint", "name": "text", "active": "boolean", "created_at": "timestamptz"},
    "hygienists": {"id": "bigint", "full_name": "text", "email": "text?", "active": "boolean",
                   "created_at": "timestamptz"},
    "hygienist_working_hours": {"id": "bigint", "hygienist_id": "bigint", "weekday": "smallint", "start_time": "time",
                                "end_time": "time"},
    "hygienist_time_off": {"id": "bigint", "hygienist_id": "bigint", "starts_at": "timestamptz",
                           "ends_at": "timestamptz", "reason": "text?"},
    # reminders of upcoming visits (009): one row per visit, kind and channel
    "reminders": {"id": "bigint", "appointment_id": "bigint", "kind": "text", "channel": "text", "status": "text",
                  "attempts": "smallint", "notification_id": "bigint?", "created_at": "timestamptz",
                  "claimed_at": "timestamptz", "sent_at": "timestamptz?", "visit_starts_at": "timestamptz"},
    # the waitlist (010): who waits for what, and each freed slot offered to each of them
    "waitlist_entries": {"id": "bigint", "patient_id": "bigint", "service_id": "bigint", "dentist_id": "bigint?",
                         "earliest": "timestamptz", "latest": "timestamptz", "status": "text",
                         "created_at": "timestamptz", "appointment_id": "bigint?", "conversation_id": "text?",
                         "updated_at": "timestamptz"},
    "waitlist_offers": {"id": "bigint", "entry_id": "bigint", "patient_id": "bigint", "service_id": "bigint",
                        "dentist_id": "bigint", "starts_at": "timestamptz", "ends_at": "timestamptz",
                        "holder": "text", "expires_at": "timestamptz", "status": "text", "appointment_id": "bigint?",
                        "created_at": "timestamptz", "decided_at": "timestamptz?", "chat_told_at": "timestamptz?"},
    # the generation of each person's calendar feed URL (012); no row is generation 0
    "calendar_feeds": {"kind": "text", "owner_id": "bigint", "generation": "integer", "renewed_at": "timestamptz"},
    "schema_migrations": {"version": "text", "name": "text", "checksum": "text", "applied_at": "timestamptz"},
}

# (table, constraint) -> definition as pg_get_constraintdef prints it
CONSTRAINTS = {
    ("dentists", "dentists_pkey"): "PRIMARY KEY (id)",
    ("dentists", "dentists_full_name_check"): "CHECK ((length(btrim(full_name)) > 0))",
    ("patients", "patients_pkey"): "PRIMARY KEY (id)",
    ("patients", "patients_full_name_check"): "CHECK ((length(btrim(full_name)) > 0))",
    ("patients", "patients_phone_key"): "UNIQUE (phone)",
    ("services", "services_pkey"): "PRIMARY KEY (id)",
    ("services", "services_name_key"): "UNIQUE (name)",
    ("services", "services_duration_minutes_check"):
        "CHECK (((duration_minutes > 0) AND (duration_minutes <= 480)))",
    ("services", "services_price_cents_check"): "CHECK ((price_cents >= 0))",
    ("services", "services_buffer_before_minutes_check"): "CHECK ((buffer_before_minutes >= 0))",
    ("services", "services_buffer_after_minutes_check"): "CHECK ((buffer_after_minutes >= 0))",
    ("services", "services_min_notice_minutes_check"): "CHECK ((min_notice_minutes >= 0))",
    ("working_hours", "working_hours_pkey"): "PRIMARY KEY (id)",
    ("working_hours", "working_hours_dentist_id_fkey"):
        "FOREIGN KEY (dentist_id) REFERENCES dentists(id) ON DELETE CASCADE",
    ("working_hours", "working_hours_weekday_check"): "CHECK (((weekday >= 1) AND (weekday <= 7)))",
    ("working_hours", "working_hours_check"): "CHECK ((end_time > start_time))",
    ("time_off", "time_off_pkey"): "PRIMARY KEY (id)",
    ("time_off", "time_off_dentist_id_fkey"): "FOREIGN KEY (dentist_id) REFERENCES dentists(id) ON DELETE CASCADE",
    ("time_off", "time_off_check"): "CHECK ((ends_at > starts_at))",
    ("appointments", "appointments_pkey"): "PRIMARY KEY (id)",
    ("appointments", "appointments_patient_id_fkey"):
        "FOREIGN KEY (patient_id) REFERENCES patients(id) ON DELETE RESTRICT",
    ("appointments", "appointments_dentist_id_fkey"):
        "FOREIGN KEY (dentist_id) REFERENCES dentists(id) ON DELETE RESTRICT",
    ("appointments", "appointments_service_id_fkey"):
        "FOREIGN KEY (service_id) REFERENCES services(id) ON DELETE RESTRICT",
    ("appointments", "appointments_status_check"):
        "CHECK ((status = ANY (ARRAY['pending'::text, 'confirmed'::text, 'cancelled'::text, 'completed'::text,"
        " 'no_show'::text])))",
    ("appointments", "appointments_time_check"): "CHECK ((ends_at > starts_at))",
    # the double-booking rule, with built-in types only (no btree_gist); a hygienist's visit holds the
    # hygienist, not the dentist of record (008)
    ("appointments", "appointments_no_overlap"):
        "EXCLUDE USING gist (int8range(dentist_id, dentist_id, '[]'::text) WITH &&,"
        " tstzrange(starts_at, ends_at, '[)'::text) WITH &&)"
        " WHERE (((status <> 'cancelled'::text) AND (hygienist_id IS NULL)))",
    # one chair and one hygienist per held range (time plus buffers), whoever writes (008)
    ("appointments", "appointments_operatory_no_overlap"):
        "EXCLUDE USING gist (int8range(operatory_id, operatory_id, '[]'::text) WITH &&,"
        " tstzrange(held_from, held_until, '[)'::text) WITH &&)"
        " WHERE (((status <> 'cancelled'::text) AND (operatory_id IS NOT NULL)))",
    ("appointments", "appointments_hygienist_no_overlap"):
        "EXCLUDE USING gist (int8range(hygienist_id, hygienist_id, '[]'::text) WITH &&,"
        " tstzrange(held_from, held_until, '[)'::text) WITH &&)"
        " WHERE (((status <> 'cancelled'::text) AND (hygienist_id IS NOT NULL)))",
    ("appointments", "appointments_operatory_id_fkey"):
        "FOREIGN KEY (operatory_id) REFERENCES operatories(id) ON DELETE RESTRICT",
    ("appointments", "appointments_hygienist_id_fkey"):
        "FOREIGN KEY (hygienist_id) REFERENCES hygienists(id) ON DELETE RESTRICT",
    ("services", "services_performed_by_check"):
        "CHECK ((performed_by = ANY (ARRAY['dentist'::text, 'hygienist'::text])))",
    ("services", "services_recall_interval_check"): "CHECK ((recall_interval > '00:00:00'::interval))",
    ("operatories", "operatories_pkey"): "PRIMARY KEY (id)",
    ("operatories", "operatories_name_key"): "UNIQUE (name)",
    ("operatories", "operatories_name_check"):
        "CHECK (((length(btrim(name)) >= 1) AND (length(btrim(name)) <= 100)))",
    ("hygienists", "hygienists_pkey"): "PRIMARY KEY (id)",
    ("hygienists", "hygienists_full_name_check"): "CHECK ((length(btrim(full_name)) > 0))",
    ("hygienist_working_hours", "hygienist_working_hours_pkey"): "PRIMARY KEY (id)",
    ("hygienist_working_hours", "hygienist_working_hours_hygienist_id_fkey"):
        "FOREIGN KEY (hygienist_id) REFERENCES hygienists(id) ON DELETE CASCADE",
    ("hygienist_working_hours", "hygienist_working_hours_weekday_check"):
        "CHECK (((weekday >= 1) AND (weekday <= 7)))",
    ("hygienist_working_hours", "hygienist_working_hours_check"): "CHECK ((end_time > start_time))",
    ("hygienist_time_off", "hygienist_time_off_pkey"): "PRIMARY KEY (id)",
    ("hygienist_time_off", "hygienist_time_off_hygienist_id_fkey"):
        "FOREIGN KEY (hygienist_id) REFERENCES hygienists(id) ON DELETE CASCADE",
    ("hygienist_time_off", "hygienist_time_off_check"): "CHECK ((ends_at > starts_at))",
    ("appointments", "appointments_idempotency_key_key"): "UNIQUE (idempotency_key)",
    # one patient in one chair at a time, whoever writes
    ("appointments", "appointments_patient_no_overlap"):
        "EXCLUDE USING gist (int8range(patient_id, patient_id, '[]'::text) WITH &&,"
        " tstzrange(starts_at, ends_at, '[)'::text) WITH &&) WHERE ((status <> 'cancelled'::text))",
    ("chat_bookings", "chat_bookings_pkey"): "PRIMARY KEY (appointment_id)",
    ("chat_bookings", "chat_bookings_appointment_id_fkey"):
        "FOREIGN KEY (appointment_id) REFERENCES appointments(id) ON DELETE CASCADE",
    ("chat_bookings", "chat_bookings_conversation_id_check"):
        "CHECK (((length(conversation_id) >= 1) AND (length(conversation_id) <= 200)))",
    ("chat_bookings", "chat_bookings_client_check"): "CHECK ((length(client) <= 100))",
    ("slot_holds", "slot_holds_client_check"): "CHECK ((length(client) <= 100))",
    ("date_overrides", "date_overrides_pkey"): "PRIMARY KEY (id)",
    ("date_overrides", "date_overrides_dentist_id_fkey"):
        "FOREIGN KEY (dentist_id) REFERENCES dentists(id) ON DELETE CASCADE",
    ("date_overrides", "date_overrides_check"): "CHECK (((start_time IS NULL) = (end_time IS NULL)))",
    ("date_overrides", "date_overrides_check1"): "CHECK ((end_time > start_time))",
    ("clinic_closures", "clinic_closures_pkey"): "PRIMARY KEY (id)",
    ("clinic_closures", "clinic_closures_on_date_key"): "UNIQUE (on_date)",
    ("slot_holds", "slot_holds_pkey"): "PRIMARY KEY (id)",
    ("slot_holds", "slot_holds_dentist_id_fkey"): "FOREIGN KEY (dentist_id) REFERENCES dentists(id) ON DELETE CASCADE",
    ("slot_holds", "slot_holds_service_id_fkey"): "FOREIGN KEY (service_id) REFERENCES services(id) ON DELETE CASCADE",
    ("slot_holds", "slot_holds_holder_check"): "CHECK (((length(holder) >= 1) AND (length(holder) <= 200)))",
    ("slot_holds", "slot_holds_check"): "CHECK ((ends_at > starts_at))",
    ("slot_holds", "slot_holds_no_overlap"):
        "EXCLUDE USING gist (int8range(dentist_id, dentist_id, '[]'::text) WITH &&,"
        " tstzrange(starts_at, ends_at, '[)'::text) WITH &&) WHERE ((hygienist_id IS NULL))",
    ("slot_holds", "slot_holds_operatory_no_overlap"):
        "EXCLUDE USING gist (int8range(operatory_id, operatory_id, '[]'::text) WITH &&,"
        " tstzrange(held_from, held_until, '[)'::text) WITH &&) WHERE ((operatory_id IS NOT NULL))",
    ("slot_holds", "slot_holds_hygienist_no_overlap"):
        "EXCLUDE USING gist (int8range(hygienist_id, hygienist_id, '[]'::text) WITH &&,"
        " tstzrange(held_from, held_until, '[)'::text) WITH &&) WHERE ((hygienist_id IS NOT NULL))",
    ("slot_holds", "slot_holds_operatory_id_fkey"):
        "FOREIGN KEY (operatory_id) REFERENCES operatories(id) ON DELETE CASCADE",
    ("slot_holds", "slot_holds_hygienist_id_fkey"):
        "FOREIGN KEY (hygienist_id) REFERENCES hygienists(id) ON DELETE CASCADE",
    ("realtime_events", "realtime_events_pkey"): "PRIMARY KEY (id)",
    ("realtime_events", "realtime_events_type_check"):
        "CHECK ((type = ANY (ARRAY['appointment_created'::text, 'appointment_updated'::text,"
        " 'appointment_deleted'::text, 'availability_changed'::text, 'reminder_sent'::text,"
        " 'waitlist_changed'::text, 'waitlist_offer'::text])))",
    ("notifications", "notifications_body_check"):
        "CHECK (((length(body) >= 1) AND (length(body) <= 10000)))",
    ("notifications", "notifications_channel_check"):
        "CHECK ((channel = ANY (ARRAY['sms'::text, 'email'::text])))",
    ("notifications", "notifications_check"):
        "CHECK (((status = 'sent'::text) = (sent_at IS NOT NULL)))",
    ("notifications", "notifications_error_check"):
        "CHECK ((length(error) <= 500))",
    ("notifications", "notifications_kind_check"):
        "CHECK (((length(kind) >= 1) AND (length(kind) <= 40)))",
    ("notifications", "notifications_pkey"):
        "PRIMARY KEY (id)",
    ("notifications", "notifications_recipient_check"):
        "CHECK (((length(recipient) >= 3) AND (length(recipient) <= 320)))",
    ("notifications", "notifications_sender_check"):
        "CHECK ((length(sender) <= 40))",
    ("notifications", "notifications_status_check"):
        "CHECK ((status = ANY (ARRAY['queued'::text, 'sent'::text, 'failed'::text])))",
    ("notifications", "notifications_subject_check"):
        "CHECK ((length(subject) <= 200))",
    ("verification_codes", "verification_codes_attempts_check"):
        "CHECK ((attempts >= 0))",
    ("verification_codes", "verification_codes_channel_check"):
        "CHECK ((channel = ANY (ARRAY['sms'::text, 'email'::text])))",
    ("verification_codes", "verification_codes_check"):
        "CHECK ((expires_at > created_at))",
    ("verification_codes", "verification_codes_client_check"):
        "CHECK ((length(client) <= 100))",
    ("verification_codes", "verification_codes_code_hash_check"):
        "CHECK ((length(code_hash) = 64))",
    ("verification_codes", "verification_codes_notification_id_fkey"):
        "FOREIGN KEY (notification_id) REFERENCES notifications(id) ON DELETE SET NULL",
    ("verification_codes", "verification_codes_pkey"):
        "PRIMARY KEY (id)",
    ("verification_codes", "verification_codes_purpose_check"):
        "CHECK ((purpose = ANY (ARRAY['chat'::text, 'patient_sign_in'::text])))",
    ("verification_codes", "verification_codes_recipient_check"):
        "CHECK (((length(recipient) >= 3) AND (length(recipient) <= 320)))",
    ("verification_codes", "verification_codes_subject_check"):
        "CHECK (((length(subject) >= 1) AND (length(subject) <= 200)))",
    ("schema_migrations", "schema_migrations_pkey"): "PRIMARY KEY (version)",
    ("staff_users", "staff_users_pkey"): "PRIMARY KEY (id)",
    ("staff_users", "staff_users_email_check"):
        "CHECK ((((length(email) >= 3) AND (length(email) <= 254)) AND (POSITION(('@'::text) IN (email)) > 1)))",
    ("staff_users", "staff_users_full_name_check"):
        "CHECK (((length(btrim(full_name)) >= 1) AND (length(btrim(full_name)) <= 200)))",
    ("staff_users", "staff_users_role_check"): "CHECK ((role = ANY (ARRAY['admin'::text, 'dentist'::text])))",
    ("staff_users", "staff_users_dentist_id_fkey"): "FOREIGN KEY (dentist_id) REFERENCES dentists(id) ON DELETE RESTRICT",
    # only an Argon2id hash can be stored, and a dentist's account (only theirs) names the dentist
    ("staff_users", "staff_users_password_hash_check"): "CHECK ((\"left\"(password_hash, 10) = '$argon2id$'::text))",
    ("staff_users", "staff_users_dentist_check"): "CHECK (((role = 'dentist'::text) = (dentist_id IS NOT NULL)))",
    ("staff_users", "staff_users_failed_attempts_check"): "CHECK ((failed_attempts >= 0))",
    ("staff_sessions", "staff_sessions_pkey"): "PRIMARY KEY (id_hash)",
    ("staff_sessions", "staff_sessions_id_hash_check"): "CHECK ((length(id_hash) = 64))",  # a SHA-256, hex
    ("staff_sessions", "staff_sessions_user_id_fkey"):
        "FOREIGN KEY (user_id) REFERENCES staff_users(id) ON DELETE CASCADE",
    ("staff_sessions", "staff_sessions_csrf_token_check"):
        "CHECK (((length(csrf_token) >= 32) AND (length(csrf_token) <= 100)))",
    ("staff_sessions", "staff_sessions_user_agent_check"): "CHECK ((length(user_agent) <= 300))",
    ("staff_sessions", "staff_sessions_client_check"): "CHECK ((length(client) <= 100))",
    ("staff_sessions", "staff_sessions_check"): "CHECK ((expires_at > created_at))",
    ("staff_sign_ins", "staff_sign_ins_pkey"): "PRIMARY KEY (id)",
    ("staff_sign_ins", "staff_sign_ins_email_check"): "CHECK ((length(email) <= 320))",
    ("staff_sign_ins", "staff_sign_ins_user_id_fkey"):
        "FOREIGN KEY (user_id) REFERENCES staff_users(id) ON DELETE SET NULL",
    ("staff_sign_ins", "staff_sign_ins_reason_check"):
        "CHECK ((reason = ANY (ARRAY['ok'::text, 'wrong_password'::text, 'unknown_email'::text, 'locked'::text,"
        " 'disabled'::text])))",
    ("staff_sign_ins", "staff_sign_ins_client_check"): "CHECK ((length(client) <= 100))",
    ("staff_sign_ins", "staff_sign_ins_check"): "CHECK ((success = (reason = 'ok'::text)))",
    # exactly one reminder per visit, kind, channel and time, whoever sends it (009, 011)
    ("reminders", "reminders_pkey"): "PRIMARY KEY (id)",
    ("reminders", "reminders_appointment_id_kind_channel_visit_starts_at_key"):
        "UNIQUE (appointment_id, kind, channel, visit_starts_at)",
    ("reminders", "reminders_appointment_id_fkey"):
        "FOREIGN KEY (appointment_id) REFERENCES appointments(id) ON DELETE CASCADE",
    ("reminders", "reminders_notification_id_fkey"):
        "FOREIGN KEY (notification_id) REFERENCES notifications(id) ON DELETE SET NULL",
    ("reminders", "reminders_kind_check"): "CHECK (((length(kind) >= 1) AND (length(kind) <= 40)))",
    ("reminders", "reminders_channel_check"): "CHECK ((channel = ANY (ARRAY['sms'::text, 'email'::text])))",
    ("reminders", "reminders_status_check"):
        "CHECK ((status = ANY (ARRAY['claimed'::text, 'sent'::text, 'failed'::text])))",
    ("reminders", "reminders_attempts_check"): "CHECK ((attempts >= 1))",
    ("reminders", "reminders_check"): "CHECK (((status = 'sent'::text) = (sent_at IS NOT NULL)))",
    # the waitlist (010): an offer of one slot to one entry, once
    ("waitlist_entries", "waitlist_entries_pkey"): "PRIMARY KEY (id)",
    ("waitlist_entries", "waitlist_entries_patient_id_fkey"):
        "FOREIGN KEY (patient_id) REFERENCES patients(id) ON DELETE CASCADE",
    ("waitlist_entries", "waitlist_entries_service_id_fkey"):
        "FOREIGN KEY (service_id) REFERENCES services(id) ON DELETE CASCADE",
    ("waitlist_entries", "waitlist_entries_dentist_id_fkey"):
        "FOREIGN KEY (dentist_id) REFERENCES dentists(id) ON DELETE CASCADE",
    ("waitlist_entries", "waitlist_entries_appointment_id_fkey"):
        "FOREIGN KEY (appointment_id) REFERENCES appointments(id) ON DELETE SET NULL",
    ("waitlist_entries", "waitlist_entries_status_check"):
        "CHECK ((status = ANY (ARRAY['waiting'::text, 'offered'::text, 'booked'::text, 'expired'::text,"
        " 'withdrawn'::text])))",
    ("waitlist_entries", "waitlist_entries_conversation_id_check"):
        "CHECK (((length(conversation_id) >= 1) AND (length(conversation_id) <= 200)))",
    ("waitlist_entries", "waitlist_entries_check"): "CHECK ((latest > earliest))",
    ("waitlist_offers", "waitlist_offers_pkey"): "PRIMARY KEY (id)",
    ("waitlist_offers", "waitlist_offers_entry_id_fkey"):
        "FOREIGN KEY (entry_id) REFERENCES waitlist_entries(id) ON DELETE CASCADE",
    ("waitlist_offers", "waitlist_offers_patient_id_fkey"):
        "FOREIGN KEY (patient_id) REFERENCES patients(id) ON DELETE CASCADE",
    ("waitlist_offers", "waitlist_offers_service_id_fkey"):
        "FOREIGN KEY (service_id) REFERENCES services(id) ON DELETE CASCADE",
    ("waitlist_offers", "waitlist_offers_dentist_id_fkey"):
        "FOREIGN KEY (dentist_id) REFERENCES dentists(id) ON DELETE CASCADE",
    ("waitlist_offers", "waitlist_offers_appointment_id_fkey"):
        "FOREIGN KEY (appointment_id) REFERENCES appointments(id) ON DELETE SET NULL",
    ("waitlist_offers", "waitlist_offers_holder_check"):
        "CHECK (((length(holder) >= 1) AND (length(holder) <= 200)))",
    ("waitlist_offers", "waitlist_offers_status_check"):
        "CHECK ((status = ANY (ARRAY['open'::text, 'accepted'::text, 'gone'::text, 'declined'::text,"
        " 'expired'::text])))",
    ("waitlist_offers", "waitlist_offers_check"): "CHECK ((ends_at > starts_at))",
    ("waitlist_offers", "waitlist_offers_entry_id_dentist_id_starts_at_key"):
        "UNIQUE (entry_id, dentist_id, starts_at)",
    ("calendar_feeds", "calendar_feeds_pkey"): "PRIMARY KEY (kind, owner_id)",
    ("calendar_feeds", "calendar_feeds_kind_check"):
        "CHECK ((kind = ANY (ARRAY['dentist'::text, 'patient'::text])))",
    ("calendar_feeds", "calendar_feeds_owner_id_check"): "CHECK ((owner_id > 0))",
    ("calendar_feeds", "calendar_feeds_generation_check"): "CHECK ((generation > 0))",
}

# Indexes other than those of the constraints above.
INDEXES = {
    ("working_hours", "working_hours_dentist_idx"), ("time_off", "time_off_dentist_idx"),
    ("appointments", "appointments_patient_idx"), ("appointments", "appointments_dentist_idx"),
    ("date_overrides", "date_overrides_dentist_idx"), ("slot_holds", "slot_holds_expiry_idx"),
    ("slot_holds", "slot_holds_holder_idx"), ("realtime_events", "realtime_events_created_idx"),
    ("slot_holds", "slot_holds_client_idx"), ("chat_bookings", "chat_bookings_conversation_idx"),
    ("chat_bookings", "chat_bookings_client_idx"),
    ("notifications", "notifications_recipient_idx"), ("notifications", "notifications_kind_idx"),
    ("verification_codes", "verification_codes_subject_idx"), ("verification_codes", "verification_codes_recipient_idx"),
    ("verification_codes", "verification_codes_client_idx"),
    ("staff_users", "staff_users_email_key"),  # unique on lower(email)
    ("staff_sessions", "staff_sessions_user_idx"), ("staff_sessions", "staff_sessions_expiry_idx"),
    ("staff_sign_ins", "staff_sign_ins_email_idx"),
    ("appointments", "appointments_operatory_idx"), ("appointments", "appointments_hygienist_idx"),
    ("hygienist_working_hours", "hygienist_working_hours_idx"), ("hygienist_time_off", "hygienist_time_off_idx"),
    ("reminders", "reminders_unsent_idx"),
    ("waitlist_entries", "waitlist_entries_waiting_idx"), ("waitlist_entries", "waitlist_entries_one_per_visit"),
    ("waitlist_offers", "waitlist_offers_open_idx"), ("waitlist_offers", "waitlist_offers_holder_idx"),
}

OUTBOX = ("AFTER", "DELETE INSERT UPDATE")  # every change, whoever makes it, writes one event
# (table, trigger) -> (function, timing, events); every one FOR EACH ROW
TRIGGERS = {
    ("appointments", "appointments_touch_updated_at"): ("touch_updated_at_v1", "BEFORE", "UPDATE"),
    ("appointments", "appointments_outbox"): ("appointments_outbox_v2", *OUTBOX),
    # the held range (time plus the service's buffers) is always the database's own (008)
    ("appointments", "appointments_held_range"): ("held_range_v1", "BEFORE", "INSERT UPDATE"),
    ("slot_holds", "slot_holds_held_range"): ("held_range_v1", "BEFORE", "INSERT UPDATE"),
    ("working_hours", "working_hours_outbox"): ("availability_outbox_v3", *OUTBOX),
    ("time_off", "time_off_outbox"): ("availability_outbox_v3", *OUTBOX),
    ("date_overrides", "date_overrides_outbox"): ("availability_outbox_v3", *OUTBOX),
    ("clinic_closures", "clinic_closures_outbox"): ("availability_outbox_v3", *OUTBOX),
    ("slot_holds", "slot_holds_outbox"): ("availability_outbox_v3", *OUTBOX),
    ("operatories", "operatories_outbox"): ("availability_outbox_v3", *OUTBOX),
    ("hygienists", "hygienists_outbox"): ("availability_outbox_v3", *OUTBOX),
    ("hygienist_working_hours", "hygienist_working_hours_outbox"): ("availability_outbox_v3", *OUTBOX),
    ("hygienist_time_off", "hygienist_time_off_outbox"): ("availability_outbox_v3", *OUTBOX),
    ("dentists", "dentists_outbox"): ("catalogue_outbox_v1", *OUTBOX),
    ("services", "services_outbox"): ("catalogue_outbox_v1", *OUTBOX),
    # reminder_sent when a reminder becomes sent (009)
    ("reminders", "reminders_outbox"): ("reminders_outbox_v1", "AFTER", "INSERT UPDATE"),
    # a reminder names the time it reminds of; a row written without it takes the visit's (011)
    ("reminders", "reminders_visit_time"): ("reminders_visit_time_v1", "BEFORE", "INSERT"),
    # waitlist_changed and waitlist_offer (010)
    ("waitlist_entries", "waitlist_entries_outbox"): ("waitlist_entries_outbox_v1", *OUTBOX),
    ("waitlist_offers", "waitlist_offers_outbox"): ("waitlist_offers_outbox_v1", "AFTER", "INSERT UPDATE"),
}

# availability_outbox_v1 (002) was replaced by _v2 in 003, _v2 and appointments_outbox_v1 by 008's, and dropped
FUNCTIONS = {"touch_updated_at_v1", "realtime_publish_v1", "appointments_outbox_v2", "availability_outbox_v3",
             "catalogue_outbox_v1", "held_range_v1", "reminders_outbox_v1", "waitlist_entries_outbox_v1",
             "waitlist_offers_outbox_v1", "reminders_visit_time_v1"}

_TYPES = {"timestamp with time zone": "timestamptz", "time without time zone": "time"}


def schema(conn: psycopg.Connection) -> dict:
    columns: dict[str, dict[str, str]] = {}
    for table, column, data_type, nullable in conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"):
        columns.setdefault(table, {})[column] = _TYPES.get(data_type, data_type) + ("?" if nullable == "YES" else "")
    constraints = {(t, n): d for t, n, d in conn.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE connamespace = 'public'::regnamespace")}
    indexes = {(t, n) for t, n in conn.execute(
        "SELECT i.tablename, i.indexname FROM pg_indexes i WHERE i.schemaname = 'public' AND NOT EXISTS"
        " (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname AND c.connamespace = 'public'::regnamespace)")}
    triggers = {(t, n): (f, timing, events) for t, n, f, timing, events, orientation in conn.execute(
        "SELECT event_object_table, trigger_name, substring(action_statement FROM 'EXECUTE FUNCTION (\\w+)\\('),"
        " action_timing, string_agg(event_manipulation, ' ' ORDER BY event_manipulation), action_orientation"
        " FROM information_schema.triggers WHERE trigger_schema = 'public'"
        " GROUP BY 1, 2, 3, 4, 6") if orientation == "ROW"}
    functions = {r[0] for r in conn.execute("SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace")}
    return {"columns": columns, "constraints": constraints, "indexes": indexes, "triggers": triggers,
            "functions": functions}


def assert_expected_schema(conn: psycopg.Connection) -> None:
    got = schema(conn)
    assert got["columns"] == COLUMNS
    assert got["constraints"] == CONSTRAINTS
    assert got["indexes"] == INDEXES
    assert got["triggers"] == TRIGGERS
    assert got["functions"] == FUNCTIONS
    rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert rows == [(name[:3], name) for name in MIGRATIONS]


@pytest.fixture
def empty_db(pg_server: str) -> Iterator[str]:
    name = f"clinic_fresh_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg_server.rpartition("/")[0] + "/" + name
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def listed_migrations(tmp_path: Path) -> Path:
    """sql/'s files named in MIGRATIONS, and only those."""
    for name in MIGRATIONS:
        shutil.copy(SQL_DIR / name, tmp_path / name)
    return tmp_path


def test_sql_holds_exactly_the_listed_migrations():
    assert sorted(p.name for p in SQL_DIR.glob("*.sql")) == MIGRATIONS, \
        "a migration was added or removed: list it in MIGRATIONS and what it creates in this module"


def test_every_migration_from_an_empty_database_gives_the_expected_schema(empty_db, listed_migrations):
    assert migrate(empty_db, listed_migrations) == MIGRATIONS
    with psycopg.connect(empty_db) as conn:
        assert_expected_schema(conn)


def test_running_again_applies_nothing_and_changes_nothing(empty_db, listed_migrations):
    migrate(empty_db, listed_migrations)
    assert migrate(empty_db, listed_migrations) == []
    with psycopg.connect(empty_db) as conn:
        assert_expected_schema(conn)


def test_edited_migration_is_refused(empty_db, listed_migrations):
    migrate(empty_db, listed_migrations)
    first = listed_migrations / MIGRATIONS[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(empty_db, listed_migrations)
