-- 004: a dentist's or a service's change shapes availability too (a dentist
-- deactivated, a service made longer): announce it like any other change, so
-- caches refresh at once. Dentists name themselves; a service is clinic-wide.

CREATE FUNCTION catalogue_outbox_v1() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    cur jsonb;
    dentist bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN cur := to_jsonb(OLD); ELSE cur := to_jsonb(NEW); END IF;
    IF TG_TABLE_NAME = 'dentists' THEN dentist := (cur->>'id')::bigint; END IF;
    PERFORM realtime_publish_v1('availability_changed', dentist, NULL,
        jsonb_build_object('dentist_id', dentist, 'source', TG_TABLE_NAME, 'op', lower(TG_OP),
                           'row_id', (cur->>'id')::bigint));
    RETURN NULL;
END $$;

CREATE TRIGGER dentists_outbox AFTER INSERT OR UPDATE OR DELETE ON dentists
    FOR EACH ROW EXECUTE FUNCTION catalogue_outbox_v1();
CREATE TRIGGER services_outbox AFTER INSERT OR UPDATE OR DELETE ON services
    FOR EACH ROW EXECUTE FUNCTION catalogue_outbox_v1();
