-- Lockstep node schema, version 1.
-- Installed on every node of a partnership (principal and mirror alike) by NodeSchemaInstaller,
-- inside one transaction, with lockstep.internal = on so that the DDL trigger ignores it.

CREATE SCHEMA lockstep;

-- The node's own view of the partnership. One row. Every mirrored write reads it (taking
-- ACCESS SHARE on the table until the transaction ends, prepared included); a role change takes
-- ACCESS EXCLUSIVE, so no transaction straddles a role change (invariant I4).
CREATE TABLE lockstep.node_state (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    partnership text        NOT NULL,
    node_name   text        NOT NULL,
    role        text        NOT NULL CHECK (role IN ('principal', 'mirror')),
    epoch       bigint      NOT NULL CHECK (epoch > 0),
    changed_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Tables whose changes are mirrored, with what the mirror's apply needs to know about them.
CREATE TABLE lockstep.attached (
    table_name   text PRIMARY KEY,          -- schema-qualified, quoted as by quote_ident
    key_columns  text[] NOT NULL,           -- primary key columns, quoted
    data_columns text[] NOT NULL,           -- every column that can be written (not generated), quoted
    update_columns text[] NOT NULL,         -- the data columns an UPDATE may set (not GENERATED ALWAYS AS IDENTITY)
    sequences    text[] NOT NULL,           -- sequences its defaults and identity columns draw from
    capture_mode text   NOT NULL CHECK (capture_mode IN ('statement', 'row')),
    applier      text,                      -- generated function that applies its changes on this node
    attached_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Row images captured inside the writing transaction; drained into the journal at commit.
-- Unlogged: its rows matter only until the same transaction's commit moves them to the journal.
CREATE UNLOGGED TABLE lockstep.capture (
    xid        xid8        NOT NULL DEFAULT pg_current_xact_id(),
    ord        bigint      GENERATED ALWAYS AS IDENTITY,
    kind       "char"      NOT NULL,        -- I insert, U update, D delete, T truncate, S ddl, A attach
    table_name text,
    new_rows   jsonb,
    old_rows   jsonb,
    ddl        text,
    ddl_path   text,
    stmt_at    timestamptz NOT NULL DEFAULT statement_timestamp(),
    PRIMARY KEY (xid, ord)
);

-- One record per mirrored transaction, identical on both nodes, addressed by (epoch, seq).
CREATE TABLE lockstep.journal (
    epoch        bigint      NOT NULL,
    seq          bigint      NOT NULL,
    gid          text        NOT NULL UNIQUE,
    origin       text        NOT NULL,      -- the node that was principal when it committed
    committed_at timestamptz NOT NULL,
    changes      json        NOT NULL,      -- json keeps the text as produced: no re-encoding on either node
    PRIMARY KEY (epoch, seq)
);
CREATE SEQUENCE lockstep.journal_seq;

-- Refuses a mirrored change unless this node is principal at the epoch the session's
-- coordinator works in. Reading node_state takes the shared lock that a role change waits for.
CREATE FUNCTION lockstep.fence() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    s lockstep.node_state;
    coordinator_epoch bigint := nullif(current_setting('lockstep.epoch', true), '')::bigint;
BEGIN
    SELECT * INTO s FROM lockstep.node_state;
    IF coordinator_epoch IS NULL THEN
        RAISE EXCEPTION 'lockstep: node % is % of partnership % at epoch %; mirrored tables change only through a Lockstep coordinator',
            s.node_name, s.role, s.partnership, s.epoch USING ERRCODE = '25006';
    END IF;
    IF s.role <> 'principal' OR s.epoch <> coordinator_epoch THEN
        RAISE EXCEPTION 'lockstep: fenced: node % is % at epoch %, the coordinator acts at epoch %',
            s.node_name, s.role, s.epoch, coordinator_epoch USING ERRCODE = '25006';
    END IF;
END $$;

-- One row per transaction that captured changes, until collect() drains them. Its deferred
-- constraint trigger refuses a commit that bypassed the protocol: otherwise the principal would
-- hold changes the mirror never saw.
CREATE UNLOGGED TABLE lockstep.capture_guard (
    xid xid8 PRIMARY KEY DEFAULT pg_current_xact_id()
);

CREATE FUNCTION lockstep.refuse_uncollected() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM lockstep.capture_guard WHERE xid = NEW.xid) THEN
        RAISE EXCEPTION 'lockstep: transaction changed mirrored tables on node % but committed outside the Lockstep commit protocol; it was rolled back so the nodes stay identical',
            (SELECT node_name FROM lockstep.node_state) USING ERRCODE = '25006';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER lockstep_refuse_uncollected AFTER INSERT ON lockstep.capture_guard
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION lockstep.refuse_uncollected();

-- Called by the first capture of a transaction (later ones see lockstep.capturing set to the
-- transaction id): checks the fence, taking the shared lock for the rest of the transaction, and
-- sets the guard.
CREATE FUNCTION lockstep.begin_capture() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM lockstep.fence();
    INSERT INTO lockstep.capture_guard DEFAULT VALUES ON CONFLICT DO NOTHING;
    PERFORM set_config('lockstep.capturing', pg_current_xact_id()::text, true);
END $$;

-- Changes this node's role and epoch. The exclusive lock waits for every transaction that read
-- the old (role, epoch), prepared ones included, so no transaction straddles the change (I4).
-- The caller bounds the wait with lock_timeout.
CREATE FUNCTION lockstep.change_role(p_role text, p_epoch bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    s lockstep.node_state;
BEGIN
    LOCK TABLE lockstep.node_state IN ACCESS EXCLUSIVE MODE;
    SELECT * INTO s FROM lockstep.node_state;
    IF p_epoch <= s.epoch THEN
        RAISE EXCEPTION 'lockstep: node % is at epoch %; a role change must move to a higher epoch, got %',
            s.node_name, s.epoch, p_epoch USING ERRCODE = '22023';
    END IF;
    UPDATE lockstep.node_state SET role = p_role, epoch = p_epoch, changed_at = clock_timestamp();
END $$;

-- Capture, statement level: one capture row per statement with the whole transition table.
CREATE FUNCTION lockstep.capture_insert() RETURNS trigger
LANGUAGE plpgsql
SET extra_float_digits = 3 SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET bytea_output = 'hex' AS $$
BEGIN
    IF current_setting('lockstep.capturing', true) IS DISTINCT FROM pg_current_xact_id()::text THEN
        PERFORM lockstep.begin_capture();
    END IF;
    INSERT INTO lockstep.capture (kind, table_name, new_rows)
    SELECT 'I', quote_ident(TG_TABLE_SCHEMA) || '.' || quote_ident(TG_TABLE_NAME), jsonb_agg(lockstep_new::text)
      FROM lockstep_new HAVING count(*) > 0;
    RETURN NULL;
END $$;

CREATE FUNCTION lockstep.capture_update() RETURNS trigger
LANGUAGE plpgsql
SET extra_float_digits = 3 SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET bytea_output = 'hex' AS $$
BEGIN
    IF current_setting('lockstep.capturing', true) IS DISTINCT FROM pg_current_xact_id()::text THEN
        PERFORM lockstep.begin_capture();
    END IF;
    INSERT INTO lockstep.capture (kind, table_name, new_rows, old_rows)
    SELECT 'U', quote_ident(TG_TABLE_SCHEMA) || '.' || quote_ident(TG_TABLE_NAME), n.rows, o.rows
      FROM (SELECT jsonb_agg(lockstep_new::text) AS rows FROM lockstep_new) n,
           (SELECT jsonb_agg(lockstep_old::text) AS rows FROM lockstep_old) o
     WHERE n.rows IS NOT NULL;
    RETURN NULL;
END $$;

CREATE FUNCTION lockstep.capture_delete() RETURNS trigger
LANGUAGE plpgsql
SET extra_float_digits = 3 SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET bytea_output = 'hex' AS $$
BEGIN
    IF current_setting('lockstep.capturing', true) IS DISTINCT FROM pg_current_xact_id()::text THEN
        PERFORM lockstep.begin_capture();
    END IF;
    INSERT INTO lockstep.capture (kind, table_name, old_rows)
    SELECT 'D', quote_ident(TG_TABLE_SCHEMA) || '.' || quote_ident(TG_TABLE_NAME), jsonb_agg(lockstep_old::text)
      FROM lockstep_old HAVING count(*) > 0;
    RETURN NULL;
END $$;

CREATE FUNCTION lockstep.capture_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('lockstep.capturing', true) IS DISTINCT FROM pg_current_xact_id()::text THEN
        PERFORM lockstep.begin_capture();
    END IF;
    INSERT INTO lockstep.capture (kind, table_name)
    VALUES ('T', quote_ident(TG_TABLE_SCHEMA) || '.' || quote_ident(TG_TABLE_NAME));
    RETURN NULL;
END $$;

-- Capture, row level: the same change format with one row per entry. Kept for the capture
-- benchmark, which measures it against the statement-level triggers.
CREATE FUNCTION lockstep.capture_row() RETURNS trigger
LANGUAGE plpgsql
SET extra_float_digits = 3 SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET bytea_output = 'hex' AS $$
DECLARE
    t text := quote_ident(TG_TABLE_SCHEMA) || '.' || quote_ident(TG_TABLE_NAME);
BEGIN
    IF current_setting('lockstep.capturing', true) IS DISTINCT FROM pg_current_xact_id()::text THEN
        PERFORM lockstep.begin_capture();
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO lockstep.capture (kind, table_name, new_rows) VALUES ('I', t, jsonb_build_array(NEW::text));
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO lockstep.capture (kind, table_name, new_rows, old_rows)
        VALUES ('U', t, jsonb_build_array(NEW::text), jsonb_build_array(OLD::text));
    ELSE
        INSERT INTO lockstep.capture (kind, table_name, old_rows) VALUES ('D', t, jsonb_build_array(OLD::text));
    END IF;
    RETURN NULL;
END $$;

-- The one spelling of a relation's name used in capture rows, the journal and attached.
CREATE FUNCTION lockstep.qualified(rel regclass) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel
$$;

-- The sequences a table's defaults and identity columns draw from.
CREATE FUNCTION lockstep.table_sequences(rel regclass) RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(DISTINCT lockstep.qualified(seq)), '{}')
      FROM (-- sequences named in column defaults (serial, nextval(...))
            SELECT d.refobjid AS seq FROM pg_depend d
             WHERE d.classid = 'pg_attrdef'::regclass AND d.refclassid = 'pg_class'::regclass
               AND d.objid IN (SELECT oid FROM pg_attrdef WHERE adrelid = rel)
            UNION
            -- sequences owned by the table: identity columns ('i') and OWNED BY ('a')
            SELECT d.objid FROM pg_depend d
             WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
               AND d.refobjid = rel AND d.deptype IN ('a', 'i')) s
     WHERE (SELECT relkind FROM pg_class WHERE oid = s.seq) = 'S'
$$;

-- The rows of a change entry, parsed back from their text form into the table's row type.
-- OFFSET 0 keeps the cast from being evaluated once per column.
CREATE FUNCTION lockstep.rows_of(a lockstep.attached, param text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT format('(SELECT (r).* FROM (SELECT x::%s AS r FROM jsonb_array_elements_text(%s) x OFFSET 0) s)', a.table_name, param)
$$;

-- Key and column lists of an attached table, spelled for apply's statements.
CREATE FUNCTION lockstep.key_match(a lockstep.attached, l text, r text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT '(' || string_agg(l || '.' || k, ',') || ') = (' || string_agg(r || '.' || k, ',') || ')'
      FROM unnest(a.key_columns) k
$$;

CREATE FUNCTION lockstep.diverged(what text, tbl text, expected bigint, actual bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'lockstep: mirror node % diverged from the principal: % on % expected % rows, found %',
        (SELECT node_name FROM lockstep.node_state), what, tbl, expected, actual
        USING ERRCODE = 'XX001';
END $$;


-- Writes, for one attached table, a function that applies its change entries with static SQL,
-- so that every statement is planned once per session rather than on every transaction. The
-- coordinator's mirror sessions start with index lookups forced (the planner cannot know how many
-- rows an entry holds) and with the output settings capture pins, so the function carries no SET
-- clauses to switch on every call.
CREATE FUNCTION lockstep.generate_applier(a lockstep.attached) RETURNS text
LANGUAGE plpgsql AS $gen$
DECLARE
    fn text := 'lockstep.' || quote_ident('apply_' || md5(a.table_name));
    cols text := array_to_string(a.data_columns, ',');
    keys text := array_to_string(a.key_columns, ',');
    -- An identity column that is GENERATED ALWAYS may not be SET; it is a key and matches anyway.
    -- With no other column, the UPDATE sets the first key to itself to count the rows.
    set_cols text := coalesce(nullif(array_to_string(a.update_columns, ','), ''), a.key_columns[1]);
    new_cols text := 'n.' || coalesce(nullif(array_to_string(a.update_columns, ',n.'), ''), a.key_columns[1]);
BEGIN
    EXECUTE format($f$
CREATE OR REPLACE FUNCTION %1$s(lockstep_kind "char", lockstep_new jsonb, lockstep_old jsonb) RETURNS void
LANGUAGE plpgsql AS $body$
#variable_conflict use_column
DECLARE
    lockstep_new_count bigint := coalesce(jsonb_array_length(lockstep_new), 0);
    lockstep_old_count bigint := coalesce(jsonb_array_length(lockstep_old), 0);
    lockstep_updated bigint;
    lockstep_deleted bigint;
    lockstep_inserted bigint;
BEGIN
    IF lockstep_kind = 'I' THEN
        INSERT INTO %2$s (%3$s) OVERRIDING SYSTEM VALUE SELECT %3$s FROM %5$s n;
    ELSIF lockstep_kind = 'U' THEN
        UPDATE %2$s t SET (%12$s) = ROW(%4$s) FROM %5$s n WHERE %7$s;
        GET DIAGNOSTICS lockstep_updated = ROW_COUNT;
        IF lockstep_updated <> lockstep_new_count THEN
            -- Some primary keys changed: remove the rows whose key is gone, add the new keys.
            DELETE FROM %2$s t USING (SELECT %8$s FROM %6$s o EXCEPT SELECT %8$s FROM %5$s n) g WHERE %9$s;
            GET DIAGNOSTICS lockstep_deleted = ROW_COUNT;
            INSERT INTO %2$s (%3$s) OVERRIDING SYSTEM VALUE SELECT %3$s FROM %5$s n
             WHERE NOT EXISTS (SELECT 1 FROM %2$s t WHERE %7$s);
            GET DIAGNOSTICS lockstep_inserted = ROW_COUNT;
            IF lockstep_updated + lockstep_deleted <> lockstep_old_count
               OR lockstep_inserted <> lockstep_new_count - lockstep_updated THEN
                PERFORM lockstep.diverged('update', %10$L, lockstep_old_count, lockstep_updated + lockstep_deleted);
            END IF;
        END IF;
    ELSIF lockstep_kind = 'D' THEN
        DELETE FROM %2$s t USING %6$s o WHERE %11$s;
        GET DIAGNOSTICS lockstep_deleted = ROW_COUNT;
        IF lockstep_deleted <> lockstep_old_count THEN
            PERFORM lockstep.diverged('delete', %10$L, lockstep_old_count, lockstep_deleted);
        END IF;
    ELSE
        RAISE EXCEPTION 'lockstep: unknown change kind %% for %%', lockstep_kind, %10$L USING ERRCODE = 'XX000';
    END IF;
END
$body$
$f$, fn, a.table_name, cols, new_cols, lockstep.rows_of(a, 'lockstep_new'), lockstep.rows_of(a, 'lockstep_old'),
      lockstep.key_match(a, 't', 'n'), keys, lockstep.key_match(a, 't', 'g'), a.table_name, lockstep.key_match(a, 't', 'o'),
      set_cols);
    RETURN fn;
END $gen$;


-- Writes lockstep.dispatch(), which calls each attached table's applier by a static call (cached
-- by PL/pgSQL) instead of dynamic SQL. Rewritten whenever the set of attached tables changes.
CREATE FUNCTION lockstep.generate_dispatcher() RETURNS void
LANGUAGE plpgsql AS $gen$
DECLARE
    branches text;
    was_internal text := current_setting('lockstep.internal', true);
BEGIN
    SELECT string_agg(format('        WHEN %L THEN PERFORM %s(kind, new_rows, old_rows);', table_name, applier), E'\n' ORDER BY table_name)
      INTO branches FROM lockstep.attached WHERE applier IS NOT NULL;
    PERFORM set_config('lockstep.internal', 'on', true);
    EXECUTE format($f$
CREATE OR REPLACE FUNCTION lockstep.dispatch(tbl text, kind "char", new_rows jsonb, old_rows jsonb) RETURNS void
LANGUAGE plpgsql AS $body$
BEGIN
    CASE tbl
%s
    ELSE
        RAISE EXCEPTION 'lockstep: table %% is not attached on mirror node %%', tbl,
            (SELECT node_name FROM lockstep.node_state) USING ERRCODE = '55000';
    END CASE;
END
$body$
$f$, coalesce(branches, '        WHEN NULL THEN NULL;'));
    PERFORM set_config('lockstep.internal', coalesce(was_internal, ''), true);
END $gen$;

-- Records what apply needs to know about a table; called on attach and after every DDL.
CREATE FUNCTION lockstep.describe(rel regclass, mode text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    keys text[];
    described lockstep.attached;
    was_internal text := current_setting('lockstep.internal', true);
BEGIN
    SELECT array_agg(quote_ident(a.attname) ORDER BY array_position(i.indkey::int2[], a.attnum))
      INTO keys
      FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
     WHERE i.indrelid = rel AND i.indisprimary;
    IF keys IS NULL THEN
        RAISE EXCEPTION 'lockstep: table % has no primary key; a mirrored table needs one to address its rows', rel
            USING ERRCODE = '42P16';
    END IF;
    INSERT INTO lockstep.attached (table_name, key_columns, data_columns, update_columns, sequences, capture_mode)
    SELECT lockstep.qualified(rel), keys,
           (SELECT array_agg(quote_ident(attname) ORDER BY attnum) FROM pg_attribute
             WHERE attrelid = rel AND attnum > 0 AND NOT attisdropped AND attgenerated = ''),
           (SELECT coalesce(array_agg(quote_ident(attname) ORDER BY attnum), '{}') FROM pg_attribute
             WHERE attrelid = rel AND attnum > 0 AND NOT attisdropped AND attgenerated = '' AND attidentity <> 'a'),
           lockstep.table_sequences(rel), mode
    ON CONFLICT (table_name) DO UPDATE
       SET key_columns = excluded.key_columns, data_columns = excluded.data_columns,
           update_columns = excluded.update_columns,
           sequences = excluded.sequences, capture_mode = excluded.capture_mode
    RETURNING * INTO described;
    PERFORM set_config('lockstep.internal', 'on', true);
    UPDATE lockstep.attached SET applier = lockstep.generate_applier(described) WHERE table_name = described.table_name;
    PERFORM set_config('lockstep.internal', coalesce(was_internal, ''), true);
    PERFORM lockstep.generate_dispatcher();
END $$;

-- Installs the capture triggers on one node. Idempotent.
CREATE FUNCTION lockstep.attach_local(rel regclass, mode text DEFAULT 'statement') RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    was_internal text := current_setting('lockstep.internal', true);
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = rel) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'lockstep: % is not a table and cannot be mirrored', rel USING ERRCODE = '42809';
    END IF;
    IF (SELECT relpersistence FROM pg_class WHERE oid = rel) = 't' THEN
        RAISE EXCEPTION 'lockstep: % is a temporary table and cannot be mirrored', rel USING ERRCODE = '42809';
    END IF;
    PERFORM lockstep.describe(rel, mode);
    PERFORM set_config('lockstep.internal', 'on', true);
    EXECUTE format('DROP TRIGGER IF EXISTS lockstep_capture_i ON %s', rel);
    EXECUTE format('DROP TRIGGER IF EXISTS lockstep_capture_u ON %s', rel);
    EXECUTE format('DROP TRIGGER IF EXISTS lockstep_capture_d ON %s', rel);
    EXECUTE format('DROP TRIGGER IF EXISTS lockstep_capture_t ON %s', rel);
    EXECUTE format('DROP TRIGGER IF EXISTS lockstep_capture_row ON %s', rel);
    IF mode = 'statement' THEN
        EXECUTE format('CREATE TRIGGER lockstep_capture_i AFTER INSERT ON %s REFERENCING NEW TABLE AS lockstep_new'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION lockstep.capture_insert()', rel);
        EXECUTE format('CREATE TRIGGER lockstep_capture_u AFTER UPDATE ON %s REFERENCING OLD TABLE AS lockstep_old'
                       ' NEW TABLE AS lockstep_new FOR EACH STATEMENT EXECUTE FUNCTION lockstep.capture_update()', rel);
        EXECUTE format('CREATE TRIGGER lockstep_capture_d AFTER DELETE ON %s REFERENCING OLD TABLE AS lockstep_old'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION lockstep.capture_delete()', rel);
    ELSE
        EXECUTE format('CREATE TRIGGER lockstep_capture_row AFTER INSERT OR UPDATE OR DELETE ON %s'
                       ' FOR EACH ROW EXECUTE FUNCTION lockstep.capture_row()', rel);
    END IF;
    EXECUTE format('CREATE TRIGGER lockstep_capture_t AFTER TRUNCATE ON %s'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION lockstep.capture_truncate()', rel);
    PERFORM set_config('lockstep.internal', coalesce(was_internal, ''), true);
END $$;

-- Attaches a table on the principal and records the attach so the mirror does the same in the
-- same two-phase commit.
CREATE FUNCTION lockstep.attach(rel regclass, mode text DEFAULT 'statement') RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM lockstep.begin_capture();
    PERFORM lockstep.attach_local(rel, mode);
    INSERT INTO lockstep.capture (kind, table_name, ddl) VALUES ('A', lockstep.qualified(rel), mode);
END $$;

-- Drops attachments of tables that no longer exist and refreshes the rest after DDL.
CREATE FUNCTION lockstep.refresh_attached() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    a lockstep.attached;
BEGIN
    FOR a IN SELECT * FROM lockstep.attached LOOP
        IF to_regclass(a.table_name) IS NULL THEN
            DELETE FROM lockstep.attached WHERE table_name = a.table_name;
            PERFORM set_config('lockstep.internal', 'on', true);
            EXECUTE format('DROP FUNCTION IF EXISTS %s', a.applier);
            PERFORM set_config('lockstep.internal', '', true);
            PERFORM lockstep.generate_dispatcher();
        ELSE
            PERFORM lockstep.describe(a.table_name::regclass, a.capture_mode);
        END IF;
    END LOOP;
END $$;

-- Records the statement text of a DDL command for replay on the mirror (once per statement,
-- however many commands it ran) and refreshes the attachments.
CREATE FUNCTION lockstep.capture_ddl() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM lockstep.begin_capture();
    IF NOT EXISTS (SELECT 1 FROM lockstep.capture
                    WHERE xid = pg_current_xact_id() AND kind = 'S'
                      AND stmt_at = statement_timestamp() AND ddl = current_query()) THEN
        INSERT INTO lockstep.capture (kind, ddl, ddl_path) VALUES ('S', current_query(), current_setting('search_path'));
    END IF;
    PERFORM lockstep.refresh_attached();
END $$;

-- DDL capture: the statement is recorded for replay, new tables with a primary key are attached.
-- Commands on temporary objects and on Lockstep's own schema are not mirrored.
CREATE FUNCTION lockstep.on_ddl() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
    c record;
    disabled text;
BEGIN
    IF current_setting('lockstep.internal', true) = 'on' OR NOT EXISTS (
            SELECT 1 FROM pg_event_trigger_ddl_commands()
             WHERE schema_name IS NULL OR (schema_name NOT LIKE 'pg\_temp%' AND schema_name <> 'lockstep')) THEN
        RETURN;
    END IF;
    PERFORM lockstep.capture_ddl();
    -- Tables created in this transaction are attached once they have a primary key; a table that
    -- existed before stays as it is (attach it explicitly: only then are both copies known equal).
    FOR c IN SELECT DISTINCT d.objid, d.command_tag FROM pg_event_trigger_ddl_commands() d
              WHERE d.object_type = 'table'
                AND d.command_tag IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE')
                AND d.schema_name NOT LIKE 'pg\_temp%' LOOP
        IF EXISTS (SELECT 1 FROM lockstep.attached WHERE table_name = lockstep.qualified(c.objid::regclass))
           OR (SELECT relpersistence FROM pg_class WHERE oid = c.objid) <> 'p'
           OR (c.command_tag = 'ALTER TABLE' AND NOT EXISTS (
                   SELECT 1 FROM lockstep.capture WHERE xid = pg_current_xact_id() AND kind = 'N'
                      AND table_name = lockstep.qualified(c.objid::regclass))) THEN
            CONTINUE;
        END IF;
        IF EXISTS (SELECT 1 FROM pg_index WHERE indrelid = c.objid AND indisprimary) THEN
            PERFORM lockstep.attach_local(c.objid::regclass);
            INSERT INTO lockstep.capture (kind, table_name, ddl) VALUES ('A', lockstep.qualified(c.objid::regclass), 'statement');
        ELSIF c.command_tag <> 'ALTER TABLE' THEN
            -- Checked again at commit: a later statement of the transaction may still add the key.
            INSERT INTO lockstep.capture (kind, table_name) VALUES ('N', lockstep.qualified(c.objid::regclass));
        END IF;
    END LOOP;
    -- Disabling a capture trigger would let writes reach the principal alone.
    SELECT string_agg(DISTINCT a.table_name, ', ') INTO disabled
      FROM lockstep.attached a JOIN pg_trigger t ON t.tgrelid = a.table_name::regclass
     WHERE t.tgname LIKE 'lockstep\_capture%' AND t.tgenabled <> 'O';
    IF disabled IS NOT NULL THEN
        RAISE EXCEPTION 'lockstep: the capture triggers of mirrored table % must stay enabled; disabling them would let writes reach the principal alone',
            disabled USING ERRCODE = '55000';
    END IF;
END $$;

-- DROP commands are not listed at ddl_command_end; they are captured here.
CREATE FUNCTION lockstep.on_drop() RETURNS event_trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('lockstep.internal', true) = 'on' OR NOT EXISTS (
            SELECT 1 FROM pg_event_trigger_dropped_objects()
             WHERE NOT is_temporary AND (schema_name IS NULL OR schema_name <> 'lockstep')) THEN
        RETURN;
    END IF;
    PERFORM lockstep.capture_ddl();
END $$;

CREATE EVENT TRIGGER lockstep_ddl ON ddl_command_end EXECUTE FUNCTION lockstep.on_ddl();
CREATE EVENT TRIGGER lockstep_drop ON sql_drop EXECUTE FUNCTION lockstep.on_drop();

-- The highest value a sequence has handed out, or NULL if it has handed out none.
CREATE FUNCTION lockstep.sequence_position(seq text) RETURNS bigint
LANGUAGE sql STABLE AS $$ SELECT pg_sequence_last_value(seq::regclass) $$;

-- A permanent table created through Lockstep must end its transaction attached, or its rows
-- would silently exist on the principal alone.
CREATE FUNCTION lockstep.refuse_unkeyed_tables(created text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY created LOOP
        IF to_regclass(t) IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lockstep.attached WHERE table_name = t) THEN
            RAISE EXCEPTION 'lockstep: table % was created without a primary key; a mirrored table needs one to address its rows (add PRIMARY KEY, or make it TEMPORARY or UNLOGGED to keep it off the mirror)', t
                USING ERRCODE = '42P16';
        END IF;
    END LOOP;
END $$;

-- Called on the principal at commit. Checks the fence, drains the transaction's captured rows
-- into one journal record and returns that record; NULL when nothing mirrored changed, so the
-- transaction commits on the principal alone.
CREATE FUNCTION lockstep.collect(p_gid text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    entries json;
    touched text[];
    unkeyed text[];
    result json;
BEGIN
    IF pg_current_xact_id_if_assigned() IS NULL THEN
        RETURN NULL;
    END IF;
    -- Deferred triggers would otherwise run at PREPARE, after the drain, and their writes would
    -- reach the principal alone: run them now, with the guard lifted so it does not refuse.
    DELETE FROM lockstep.capture_guard WHERE xid = pg_current_xact_id();
    SET CONSTRAINTS ALL IMMEDIATE;
    -- Anything captured from here on sets the guard again, so a late write fails the commit.
    PERFORM set_config('lockstep.capturing', '', true);
    -- json_agg: jsonb_agg re-encodes large jsonb values and grows quadratically with them.
    WITH drained AS (DELETE FROM lockstep.capture WHERE xid = pg_current_xact_id() RETURNING *)
    SELECT json_agg(json_strip_nulls(json_build_object(
               'k', kind, 't', table_name, 'n', new_rows, 'o', old_rows, 'q', ddl, 'p', ddl_path)) ORDER BY ord)
               FILTER (WHERE kind <> 'N'),
           array_agg(DISTINCT table_name) FILTER (WHERE kind <> 'N'),
           array_agg(table_name) FILTER (WHERE kind = 'N')
      INTO entries, touched, unkeyed FROM drained;
    IF unkeyed IS NOT NULL THEN
        PERFORM lockstep.refuse_unkeyed_tables(unkeyed);
    END IF;
    IF entries IS NULL THEN
        RETURN NULL;
    END IF;
    -- The node_state row was read under the shared lock by the first capture (fence); the
    -- conditions repeat the fence so that a record is never written at another role or epoch.
    INSERT INTO lockstep.journal (epoch, seq, gid, origin, committed_at, changes)
    SELECT s.epoch, nextval('lockstep.journal_seq'), p_gid, s.node_name, clock_timestamp(),
           json_build_object('e', entries, 's', coalesce(
               (SELECT json_object_agg(q.seq, q.pos)
                  FROM (SELECT u.seq, lockstep.sequence_position(u.seq) AS pos
                          FROM (SELECT DISTINCT unnest(a.sequences) AS seq FROM lockstep.attached a
                                 WHERE a.table_name = ANY (touched)) u) q
                 WHERE q.pos IS NOT NULL), '{}'::json))
      FROM lockstep.node_state s
     WHERE s.role = 'principal' AND s.epoch = nullif(current_setting('lockstep.epoch', true), '')::bigint
    RETURNING json_build_object('epoch', epoch, 'seq', seq, 'gid', gid, 'origin', origin,
                                'committed_at', committed_at, 'changes', changes) INTO result;
    IF result IS NULL THEN
        PERFORM lockstep.fence();
        RAISE EXCEPTION 'lockstep: node % refused the journal record of transaction %', 
            (SELECT node_name FROM lockstep.node_state), p_gid USING ERRCODE = '25006';
    END IF;
    RETURN result;
END $$;

CREATE FUNCTION lockstep.apply_entry(e jsonb) RETURNS void
LANGUAGE plpgsql
SET extra_float_digits = 3 SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET bytea_output = 'hex' AS $$
DECLARE
    a lockstep.attached;
    path text;
BEGIN
    IF e->>'k' = 'S' THEN
        path := current_setting('search_path');
        PERFORM set_config('search_path', e->>'p', true);
        EXECUTE e->>'q';
        PERFORM set_config('search_path', path, true);
        PERFORM lockstep.refresh_attached();
        RETURN;
    ELSIF e->>'k' = 'A' THEN
        PERFORM lockstep.attach_local((e->>'t')::regclass, e->>'q');
        RETURN;
    END IF;
    SELECT * INTO a FROM lockstep.attached WHERE table_name = e->>'t';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lockstep: table % is not attached on mirror node %', e->>'t',
            (SELECT node_name FROM lockstep.node_state) USING ERRCODE = '55000';
    END IF;
    IF e->>'k' = 'T' THEN
        EXECUTE format('TRUNCATE %s CASCADE', a.table_name);
    ELSE
        EXECUTE format('SELECT %s($1, $2, $3)', a.applier) USING (e->>'k')::"char", e->'n', e->'o';
    END IF;
END $$;

-- Moves a sequence forward to at least the position the principal reported. The session lock
-- serialises concurrent applies so that a slower one never moves it back.
CREATE FUNCTION lockstep.advance_sequence(seq text, pos bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    k bigint := hashtextextended('lockstep.sequence:' || seq, 0);
BEGIN
    IF lockstep.sequence_position(seq) >= pos THEN
        RETURN;
    END IF;
    -- No exception block (a subtransaction on every commit): should the statement be cancelled
    -- between lock and unlock, the next apply on this session times out, the pool drops the
    -- connection and the session lock goes with it.
    PERFORM pg_advisory_lock(k);
    IF coalesce(lockstep.sequence_position(seq), -9223372036854775808) < pos THEN
        PERFORM setval(seq::regclass, pos, true);
    END IF;
    PERFORM pg_advisory_unlock(k);
END $$;

-- Called on the mirror, inside the mirror transaction that is then prepared: checks the fence,
-- applies a journal record produced by collect() and stores the same record.
CREATE FUNCTION lockstep.apply(rec json) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    s lockstep.node_state;
    r jsonb := rec::jsonb;
    e jsonb;
    q record;
BEGIN
    SELECT * INTO s FROM lockstep.node_state;
    IF s.role <> 'mirror' OR s.epoch <> (r->>'epoch')::bigint THEN
        RAISE EXCEPTION 'lockstep: fenced: node % is % at epoch %, the journal record % is of epoch %',
            s.node_name, s.role, s.epoch, r->>'gid', r->>'epoch' USING ERRCODE = '25006';
    END IF;
    IF current_setting('session_replication_role') <> 'replica' THEN
        RAISE EXCEPTION 'lockstep: apply on node % needs session_replication_role = replica', s.node_name
            USING ERRCODE = '55000';
    END IF;
    FOR e IN SELECT * FROM jsonb_array_elements(r->'changes'->'e') LOOP
        IF e->>'k' IN ('I', 'U', 'D') THEN
            PERFORM lockstep.dispatch(e->>'t', (e->>'k')::"char", e->'n', e->'o');
        ELSE
            PERFORM lockstep.apply_entry(e);
        END IF;
    END LOOP;
    FOR q IN SELECT key, value FROM jsonb_each_text(r->'changes'->'s') LOOP
        PERFORM lockstep.advance_sequence(q.key, q.value::bigint);
    END LOOP;
    INSERT INTO lockstep.journal (epoch, seq, gid, origin, committed_at, changes)
    VALUES ((r->>'epoch')::bigint, (r->>'seq')::bigint, r->>'gid', r->>'origin',
            (r->>'committed_at')::timestamptz, rec->'changes');
END $$;

-- Per-table checksum for verification: row count and an order-independent sum of row hashes.
CREATE FUNCTION lockstep.checksum(tbl text, OUT row_count bigint, OUT digest numeric)
LANGUAGE plpgsql STABLE
SET extra_float_digits = 3 SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET bytea_output = 'hex' AS $$
BEGIN
    EXECUTE format('SELECT count(*), coalesce(sum((''x'' || left(md5(t::text), 15))::bit(60)::bigint), 0) FROM %s t', tbl)
       INTO row_count, digest;
END $$;

-- Whether a committed Lockstep transaction is present here; used by in-doubt resolution.
CREATE FUNCTION lockstep.committed(p_gid text) RETURNS boolean
LANGUAGE sql STABLE AS $$ SELECT EXISTS (SELECT 1 FROM lockstep.journal WHERE gid = p_gid AND epoch > 0) $$;

-- Before in-doubt resolution rolls back a transaction that is prepared on one node only, it bars
-- the gid on the other node: a tombstone (epoch 0) takes the gid's place in the journal, so a
-- late apply of a live commit that was merely slow fails on the unique gid instead of committing
-- the transaction on this node alone. Returns false when the gid is in use (prepared, or being
-- applied right now): the caller must wait, not roll back.
CREATE SEQUENCE lockstep.tombstone_seq;
CREATE FUNCTION lockstep.bar(p_gid text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO lockstep.journal (epoch, seq, gid, origin, committed_at, changes)
    VALUES (0, nextval('lockstep.tombstone_seq'), p_gid, 'in-doubt resolution', clock_timestamp(), '{}')
    ON CONFLICT (gid) DO NOTHING;
    RETURN EXISTS (SELECT 1 FROM lockstep.journal WHERE gid = p_gid AND epoch = 0);
EXCEPTION WHEN lock_not_available THEN
    RETURN false;
END $$;

CREATE TABLE lockstep.schema_version (
    version      int PRIMARY KEY,
    installed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
INSERT INTO lockstep.schema_version (version) VALUES (1);
SELECT lockstep.generate_dispatcher();

