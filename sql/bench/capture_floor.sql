-- bench --target floor: the least work trigger capture inside the writing transaction can do, so
-- that the benchmark can show how far Lockstep is from it. A trigger appends each statement's (or
-- row's) images to a transaction-local setting; the client stores them as one journal record on
-- both nodes. No fencing, guard, sequences, row-image apply, DDL capture or coordinator.
CREATE TABLE bench_floor_journal (
    gid     text PRIMARY KEY,
    changes json NOT NULL
);

CREATE FUNCTION bench_floor_statement() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    new_rows text;
    old_rows text;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        SELECT (SELECT string_agg(to_json(n::text)::text, ',') FROM n), (SELECT string_agg(to_json(o::text)::text, ',') FROM o)
          INTO new_rows, old_rows;
    ELSE
        SELECT string_agg(to_json(n::text)::text, ',') INTO new_rows FROM n;
    END IF;
    new_rows := set_config('bench.changes', coalesce(current_setting('bench.changes', true), '') || ',{"k":"' || left(TG_OP, 1)
        || '","t":' || to_json(TG_TABLE_NAME::text) || coalesce(',"n":[' || new_rows || ']', '') || coalesce(',"o":[' || old_rows || ']', '') || '}', true);
    RETURN NULL;
END $$;

CREATE FUNCTION bench_floor_row() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ignored text;
BEGIN
    ignored := set_config('bench.changes', coalesce(current_setting('bench.changes', true), '') || ',{"k":"' || left(TG_OP, 1)
        || '","t":' || to_json(TG_TABLE_NAME::text) || ',"n":[' || to_json(NEW::text)::text || ']'
        || CASE WHEN TG_OP = 'UPDATE' THEN ',"o":[' || to_json(OLD::text)::text || ']' ELSE '' END || '}', true);
    RETURN NULL;
END $$;

-- Captures the table's inserts and updates (all the TPC-B transaction does) at the given level.
CREATE FUNCTION bench_floor_attach(rel regclass, mode text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF mode = 'row' THEN
        EXECUTE format('CREATE TRIGGER bench_floor AFTER INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION bench_floor_row()', rel);
    ELSE
        EXECUTE format('CREATE TRIGGER bench_floor_u AFTER UPDATE ON %s REFERENCING NEW TABLE AS n OLD TABLE AS o'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION bench_floor_statement()', rel);
        EXECUTE format('CREATE TRIGGER bench_floor_i AFTER INSERT ON %s REFERENCING NEW TABLE AS n'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION bench_floor_statement()', rel);
    END IF;
END $$;
