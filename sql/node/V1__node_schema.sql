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
    changed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- On a principal without a witness: whether its mirror holds everything (SYNCHRONIZED) or
    -- fell behind while the principal committed alone. With a witness, the witness's record rules.
    mirroring_state text    NOT NULL DEFAULT 'SYNCHRONIZED'
                            CHECK (mirroring_state IN ('SYNCHRONIZED', 'SYNCHRONIZING', 'DISCONNECTED', 'SUSPENDED')),
    -- Counts the changes of mirroring_state, so that a change decided on an old reading fails.
    mirroring_change bigint NOT NULL DEFAULT 0
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

-- The change set of a transaction is built in transaction-local settings (lockstep.changes: the
-- journal entries as JSON text, each starting with a comma; lockstep.group: the entry still open
-- for more rows). Settings follow savepoints and vanish at commit, and writing them touches no
-- relation. Past 8 kB the text moves here in chunks, so that appends stay cheap for bulk writes.
-- Unlogged: its rows matter only until the same transaction's commit moves them to the journal.
CREATE UNLOGGED TABLE lockstep.capture (
    xid   xid8   NOT NULL DEFAULT pg_current_xact_id(),
    ord   bigint GENERATED ALWAYS AS IDENTITY,
    chunk text   NOT NULL,
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
-- Returns '' so that hot paths can call it in an assignment rather than a PERFORM.
CREATE FUNCTION lockstep.fence() RETURNS text
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
    RETURN '';
END $$;

-- One row per transaction that captured changes, until collect() drains them. Its deferred
-- constraint trigger refuses a commit that bypassed the protocol: otherwise the principal would
-- hold changes the mirror never saw. No index and no lookup, as this runs in every writing
-- transaction: begin_capture remembers the row's ctid for collect to delete it, and collect marks
-- the transaction collected in a setting, which the trigger reads.
CREATE UNLOGGED TABLE lockstep.capture_guard (
    xid xid8 NOT NULL DEFAULT pg_current_xact_id()
);

-- SET CONSTRAINTS ALL IMMEDIATE in the middle of a transaction (Django's check_constraints, for
-- one) fires this trigger early, and so does a first write while constraints are immediate. No
-- trigger can tell such a firing from the one at commit, but commit fires deferred triggers in a
-- loop until none is left, all within one statement: so the first uncollected firing of a
-- statement defers the guard again with a new row, and a second firing in the same statement
-- (the commit's loop reaching that row) refuses. Two early firings within one protocol message
-- are refused too: two SET CONSTRAINTS ALL IMMEDIATE in it, or a first write while constraints
-- are immediate and one SET CONSTRAINTS ALL IMMEDIATE after it.
CREATE FUNCTION lockstep.refuse_uncollected() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ignored text;
BEGIN
    IF current_setting('lockstep.collected', true) IS DISTINCT FROM NEW.xid::text THEN
        IF current_setting('lockstep.guard_deferred_at', true) IS DISTINCT FROM statement_timestamp()::text THEN
            ignored := set_config('lockstep.guard_deferred_at', statement_timestamp()::text, true);
            SET CONSTRAINTS lockstep.lockstep_refuse_uncollected DEFERRED;
            INSERT INTO lockstep.capture_guard DEFAULT VALUES;
            -- collect then deletes the transaction's guard rows by xid: this row's ctid may be
            -- overwritten by begin_capture, which can be what fired the trigger.
            ignored := set_config('lockstep.guard_rearmed', 'on', true);
            RETURN NULL;
        END IF;
        RAISE EXCEPTION 'lockstep: transaction changed mirrored tables on node % but committed outside the Lockstep commit protocol; it was rolled back so the nodes stay identical',
            (SELECT node_name FROM lockstep.node_state) USING ERRCODE = '25006',
            HINT = 'Commit through a Lockstep connection. Two SET CONSTRAINTS ALL IMMEDIATE in one protocol message look like such a commit to this check: send them separately.';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER lockstep_refuse_uncollected AFTER INSERT ON lockstep.capture_guard
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION lockstep.refuse_uncollected();

-- Called by the first capture of a transaction (later ones see lockstep.capturing set to the
-- transaction id): checks the fence, taking the shared lock for the rest of the transaction, sets
-- the guard and starts an empty change set. Returns '' so that callers on the hot path can call it
-- in an assignment: a PL/pgSQL assignment is evaluated directly, whereas every PERFORM runs a
-- query through the executor, which costs several times more.
CREATE FUNCTION lockstep.begin_capture() RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    ignored text;
BEGIN
    ignored := lockstep.fence();
    -- Runs once per transaction, and again only for a write after collect, which is refused. A
    -- first write made by a deferred trigger that collect itself runs belongs to the change set
    -- it drains.
    IF current_setting('lockstep.draining', true) IS DISTINCT FROM pg_current_xact_id()::text THEN
        IF current_setting('lockstep.collected', true) = pg_current_xact_id()::text THEN
            RAISE EXCEPTION 'lockstep: transaction changed mirrored tables on node % after its changes were collected for the Lockstep commit; it was rolled back so the nodes stay identical',
                (SELECT node_name FROM lockstep.node_state) USING ERRCODE = '25006';
        END IF;
    END IF;
    INSERT INTO lockstep.capture_guard DEFAULT VALUES RETURNING ctid::text INTO ignored;
    ignored := set_config('lockstep.guard', ignored, true);
    ignored := set_config('lockstep.capturing', pg_current_xact_id()::text, true);
    ignored := set_config('lockstep.changes', '', true);
    ignored := set_config('lockstep.group', '', true);
    ignored := set_config('lockstep.touched', '', true);
    ignored := set_config('lockstep.sequences', '', true);
    RETURN set_config('lockstep.spilled', '', true);
END $$;

-- Starts capturing unless this transaction already does.
CREATE FUNCTION lockstep.ensure_capture() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('lockstep.capturing', true) IS DISTINCT FROM pg_current_xact_id()::text THEN
        PERFORM lockstep.begin_capture();
    END IF;
END $$;

-- Stores the change set text, moving it to lockstep.capture once it passes 8 kB.
CREATE FUNCTION lockstep.store_changes(buf text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF octet_length(buf) > 8192 THEN
        INSERT INTO lockstep.capture (chunk) VALUES (buf);
        buf := set_config('lockstep.spilled', 'on', true);
        buf := '';
    END IF;
    buf := set_config('lockstep.changes', buf, true);
END $$;

-- The change set text up to a new entry: the open entry, if any, is closed.
CREATE FUNCTION lockstep.close_entry() RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    RETURN current_setting('lockstep.changes') || CASE WHEN current_setting('lockstep.group') = '' THEN '' ELSE ']}' END;
END $$;

-- Appends a complete entry to the change set.
CREATE FUNCTION lockstep.append_entry(entry text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    buf text := lockstep.close_entry();
BEGIN
    PERFORM set_config('lockstep.group', '', true);
    PERFORM lockstep.store_changes(buf || ',' || entry);
END $$;

-- A table's name as journal entries spell it, as a JSON string.
CREATE FUNCTION lockstep.table_json(schema_name name, table_name name) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN to_json(quote_ident(schema_name) || '.' || quote_ident(table_name))::text;
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

-- Without a witness, a principal records here that its mirror fell behind before it commits
-- alone, so that every coordinator, including one started later, learns it. Only the principal
-- of the given epoch records; the update takes no lock that transactions in flight hold.
-- With p_expected_change, only if no other change came since the caller read mirroring_change.
CREATE FUNCTION lockstep.record_mirroring_state(p_epoch bigint, p_state text, p_expected_change bigint DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE lockstep.node_state SET mirroring_state = p_state, mirroring_change = mirroring_change + 1
     WHERE role = 'principal' AND epoch = p_epoch
       AND (p_expected_change IS NULL OR mirroring_change = p_expected_change);
    RETURN FOUND;
END $$;

-- The share lock makes a commit alone that races the catch-up's cut-over see the cut-over's
-- state: the latest row version under READ COMMITTED, a serialization failure under REPEATABLE
-- READ. A lockstep commit needs no lock: it conflicts, row by row, with any commit it must follow.
CREATE FUNCTION lockstep.require_mirroring_path(p_gid text, p_alone boolean) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    s lockstep.node_state;
BEGIN
    IF p_alone THEN
        SELECT * INTO s FROM lockstep.node_state WHERE mirroring_state <> 'SYNCHRONIZED' FOR SHARE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'lockstep: transaction % was rolled back: node % has its mirror SYNCHRONIZED again, so it no longer commits alone; retry it',
                p_gid, (SELECT node_name FROM lockstep.node_state) USING ERRCODE = '40001';
        END IF;
    ELSE
        SELECT * INTO s FROM lockstep.node_state;
        IF s.mirroring_state <> 'SYNCHRONIZED' THEN
            RAISE EXCEPTION 'lockstep: transaction % was rolled back: node % records its mirror as % at epoch %, so it commits alone until the mirror has caught up; retry it',
                p_gid, s.node_name, s.mirroring_state, s.epoch USING ERRCODE = '40001';
        END IF;
    END IF;
END $$;

-- Whether the session's output settings already write row text the way capture pins it (exact
-- floats, ISO dates, postgres intervals, hex bytea; the date order does not change ISO output).
-- Usually they do, and capture then runs without switching settings: switching them costs more
-- than the capture itself (DateStyle and IntervalStyle are reported to the client on every change).
-- Any positive extra_float_digits writes the shortest exact text (PostgreSQL 12 and later; the
-- schema needs 13 for pg_current_xact_id), and the JDBC driver leaves the default of 1 there.
CREATE FUNCTION lockstep.output_pinned() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT current_setting('extra_float_digits')::int > 0
       AND current_setting('bytea_output') = 'hex'
       AND current_setting('IntervalStyle') = 'postgres' AND current_setting('DateStyle') LIKE 'ISO,%'
$$;

-- Pins the output settings for the rest of the transaction (capture restores them right after);
-- returns the values they had, in the order lockstep.unpin_output takes them.
CREATE FUNCTION lockstep.pin_output() RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    saved text[] := ARRAY[current_setting('extra_float_digits'), current_setting('bytea_output'),
                          current_setting('IntervalStyle'), current_setting('DateStyle')];
    ignored text;
BEGIN
    ignored := set_config('extra_float_digits', '3', true);
    ignored := set_config('bytea_output', 'hex', true);
    ignored := set_config('IntervalStyle', 'postgres', true);
    ignored := set_config('DateStyle', 'ISO, YMD', true);
    RETURN saved;
END $$;

CREATE FUNCTION lockstep.unpin_output(saved text[]) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    ignored text;
BEGIN
    ignored := set_config('extra_float_digits', saved[1], true);
    ignored := set_config('bytea_output', saved[2], true);
    ignored := set_config('IntervalStyle', saved[3], true);
    RETURN set_config('DateStyle', saved[4], true);
END $$;

-- Capture, row level: one entry per run of rows of the same table and kind. An UPDATE entry
-- lists each row's new and old image in turn ("r"). The output settings are pinned so that the
-- row text reads back the same on the mirror whatever the application set.
CREATE FUNCTION lockstep.capture_row() RETURNS trigger
LANGUAGE plpgsql AS $$
-- Runs for every row written: inline on purpose, as each nested PL/pgSQL call costs more than
-- the whole append; assignments only, no PERFORM (each PERFORM is a query through the executor).
DECLARE
    grp text := TG_OP || TG_RELID;
    buf text;
    tbl text;
    touched text;
    saved text[];
    ignored text;
BEGIN
    IF current_setting('lockstep.capturing', true) IS DISTINCT FROM pg_current_xact_id()::text THEN
        ignored := lockstep.begin_capture();
    END IF;
    buf := current_setting('lockstep.changes');
    IF current_setting('lockstep.group') = grp THEN
        buf := buf || ',';
    ELSE
        IF current_setting('lockstep.group') <> '' THEN
            buf := buf || ']}';
        END IF;
        tbl := to_json(quote_ident(TG_TABLE_SCHEMA) || '.' || quote_ident(TG_TABLE_NAME))::text;
        buf := buf || ',{"k":"' || left(TG_OP, 1) || '","t":' || tbl
            || CASE TG_OP WHEN 'INSERT' THEN ',"n":[' WHEN 'DELETE' THEN ',"o":[' ELSE ',"r":[' END;
        ignored := set_config('lockstep.group', grp, true);
        touched := current_setting('lockstep.touched');
        -- A JSON string never contains '","' unescaped, so this match is exact.
        IF strpos(touched || ',', ',' || tbl || ',') = 0 THEN
            ignored := set_config('lockstep.touched', touched || ',' || tbl, true);
            -- The trigger's argument lists the table's sequences (see install_capture).
            IF TG_ARGV[0] <> '' THEN
                ignored := set_config('lockstep.sequences', current_setting('lockstep.sequences') || ',' || TG_ARGV[0], true);
            END IF;
        END IF;
    END IF;
    IF NOT lockstep.output_pinned() THEN
        saved := lockstep.pin_output();
    END IF;
    IF TG_OP = 'UPDATE' THEN
        buf := buf || to_json(NEW::text)::text || ',' || to_json(OLD::text)::text;
    ELSIF TG_OP = 'INSERT' THEN
        buf := buf || to_json(NEW::text)::text;
    ELSE
        buf := buf || to_json(OLD::text)::text;
    END IF;
    IF saved IS NOT NULL THEN
        ignored := lockstep.unpin_output(saved);
    END IF;
    IF octet_length(buf) > 8192 THEN
        PERFORM lockstep.store_changes(buf);
    ELSE
        ignored := set_config('lockstep.changes', buf, true);
    END IF;
    RETURN NULL;
END $$;

-- Capture, statement level: one entry per statement with the whole transition table. Inline
-- and without PERFORM, like capture_row: it runs for every statement that writes.
CREATE FUNCTION lockstep.capture_statement() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    new_rows text;
    old_rows text;
    tbl text;
    buf text;
    touched text;
    saved text[];
    ignored text;
BEGIN
    IF NOT lockstep.output_pinned() THEN
        saved := lockstep.pin_output();
    END IF;
    -- The transition table's own name is the whole-row reference: a column may be named like any alias.
    IF TG_OP = 'UPDATE' THEN
        SELECT (SELECT string_agg(to_json(lockstep_new::text)::text, ',') FROM lockstep_new),
               (SELECT string_agg(to_json(lockstep_old::text)::text, ',') FROM lockstep_old)
          INTO new_rows, old_rows;
    ELSIF TG_OP = 'INSERT' THEN
        SELECT string_agg(to_json(lockstep_new::text)::text, ',') INTO new_rows FROM lockstep_new;
    ELSE
        SELECT string_agg(to_json(lockstep_old::text)::text, ',') INTO old_rows FROM lockstep_old;
    END IF;
    IF saved IS NOT NULL THEN
        ignored := lockstep.unpin_output(saved);
    END IF;
    IF new_rows IS NULL AND old_rows IS NULL THEN
        RETURN NULL;
    END IF;
    IF current_setting('lockstep.capturing', true) IS DISTINCT FROM pg_current_xact_id()::text THEN
        ignored := lockstep.begin_capture();
    END IF;
    tbl := to_json(quote_ident(TG_TABLE_SCHEMA) || '.' || quote_ident(TG_TABLE_NAME))::text;
    touched := current_setting('lockstep.touched');
    -- A JSON string never contains '","' unescaped, so this match is exact.
    IF strpos(touched || ',', ',' || tbl || ',') = 0 THEN
        ignored := set_config('lockstep.touched', touched || ',' || tbl, true);
        -- The trigger's argument lists the table's sequences (see install_capture).
        IF TG_ARGV[0] <> '' THEN
            ignored := set_config('lockstep.sequences', current_setting('lockstep.sequences') || ',' || TG_ARGV[0], true);
        END IF;
    END IF;
    buf := current_setting('lockstep.changes');
    IF current_setting('lockstep.group') <> '' THEN
        -- A row-level entry is open: close it.
        buf := buf || ']}';
        ignored := set_config('lockstep.group', '', true);
    END IF;
    buf := buf || ',{"k":"' || left(TG_OP, 1) || '","t":' || tbl
        || coalesce(',"n":[' || new_rows || ']', '') || coalesce(',"o":[' || old_rows || ']', '') || '}';
    IF octet_length(buf) > 8192 THEN
        PERFORM lockstep.store_changes(buf);
    ELSE
        ignored := set_config('lockstep.changes', buf, true);
    END IF;
    RETURN NULL;
END $$;

-- TRUNCATE and DDL do not conflict row by row with the exposed commits that follow a change of
-- the principal's mirroring state. Under REPEATABLE READ or SERIALIZABLE the transaction's
-- snapshot may predate such a change, and collect, reading the state through that snapshot, would
-- carry them to the mirror ahead of exposed commits that catch-up replays there later. A row lock
-- on the state would catch the change but, held by a prepared transaction left in doubt, would
-- keep the monitor from recording a lost mirror; so they run under READ COMMITTED only, where
-- collect reads the state afresh.
CREATE FUNCTION lockstep.require_read_committed(what text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- READ UNCOMMITTED runs as READ COMMITTED in PostgreSQL.
    IF current_setting('transaction_isolation') NOT IN ('read committed', 'read uncommitted') THEN
        RAISE EXCEPTION 'lockstep: % on node % is refused in a % transaction: it could reach the mirror ahead of commits its snapshot does not see; run it under READ COMMITTED (SET TRANSACTION ISOLATION LEVEL READ COMMITTED)',
            what, (SELECT node_name FROM lockstep.node_state), upper(current_setting('transaction_isolation'))
            USING ERRCODE = '0A000';
    END IF;
END $$;

CREATE FUNCTION lockstep.capture_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM lockstep.require_read_committed('TRUNCATE of mirrored table ' || lockstep.table_json(TG_TABLE_SCHEMA, TG_TABLE_NAME));
    IF current_setting('lockstep.capturing', true) IS DISTINCT FROM pg_current_xact_id()::text THEN
        PERFORM lockstep.begin_capture();
    END IF;
    PERFORM lockstep.append_entry('{"k":"T","t":' || lockstep.table_json(TG_TABLE_SCHEMA, TG_TABLE_NAME) || '}');
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

-- The rows of a change entry, parsed back from their text form into the table's row type. A
-- row-level UPDATE entry interleaves new and old images (stride 2): new rows are the odd
-- elements, old rows the even ones. OFFSET 0 keeps the cast from being evaluated once per column.
CREATE FUNCTION lockstep.rows_of(a lockstep.attached, param text, filter text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT format('(SELECT (r).* FROM (SELECT x::%s AS r FROM jsonb_array_elements_text(%s) WITH ORDINALITY AS p(x, i)'
                  ' WHERE %s OFFSET 0) s)', a.table_name, param, filter)
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
-- clauses to switch on every call. An entry of one row, the usual case of transactional work,
-- takes a plain statement on the row's key instead of a join with the parsed entry, which costs
-- about half as much to execute.
CREATE FUNCTION lockstep.generate_applier(a lockstep.attached) RETURNS text
LANGUAGE plpgsql AS $gen$
DECLARE
    fn text := 'lockstep.' || quote_ident('apply_' || md5(a.table_name));
    cols text := array_to_string(a.data_columns, ',');
    keys text := array_to_string(a.key_columns, ',');
    -- An identity column that is GENERATED ALWAYS may not be SET; it is a key and matches anyway.
    -- With no other column, the UPDATE sets the first key to itself to count the rows.
    set_list text[] := coalesce(nullif(a.update_columns, '{}'), a.key_columns[1:1]);
    set_cols text := array_to_string(set_list, ',');
    new_cols text := 'n.' || array_to_string(set_list, ',n.');
    one_new_cols text := 'lockstep_n.' || array_to_string(set_list, ',lockstep_n.');
    one_values text := 'lockstep_n.' || array_to_string(a.data_columns, ',lockstep_n.');
    one_old_key text := '(t.' || array_to_string(a.key_columns, ',t.') || ') = (lockstep_o.'
                        || array_to_string(a.key_columns, ',lockstep_o.') || ')';
BEGIN
    EXECUTE format($f$
CREATE OR REPLACE FUNCTION %1$s(lockstep_kind "char", lockstep_new jsonb, lockstep_old jsonb, lockstep_stride int) RETURNS boolean
LANGUAGE plpgsql AS $body$
#variable_conflict use_column
DECLARE
    lockstep_new_count bigint := coalesce(jsonb_array_length(lockstep_new), 0) / lockstep_stride;
    lockstep_old_count bigint := coalesce(jsonb_array_length(lockstep_old), 0) / lockstep_stride;
    lockstep_n %2$s;
    lockstep_o %2$s;
    lockstep_updated bigint;
    lockstep_deleted bigint;
    lockstep_inserted bigint;
BEGIN
    IF lockstep_kind = 'I' AND lockstep_new_count = 1 THEN
        lockstep_n := (lockstep_new->>0)::%2$s;
        INSERT INTO %2$s (%3$s) OVERRIDING SYSTEM VALUE VALUES (%14$s);
    ELSIF lockstep_kind = 'U' AND lockstep_new_count = 1 AND lockstep_old_count = 1 THEN
        -- The old image's key finds the row, so a changed key needs nothing more.
        lockstep_n := (lockstep_new->>0)::%2$s;
        lockstep_o := (lockstep_old->>(lockstep_stride - 1))::%2$s;
        UPDATE %2$s t SET (%12$s) = ROW(%13$s) WHERE %15$s;
        GET DIAGNOSTICS lockstep_updated = ROW_COUNT;
        IF lockstep_updated <> 1 THEN
            PERFORM lockstep.diverged('update', %10$L, 1, lockstep_updated);
        END IF;
    ELSIF lockstep_kind = 'D' AND lockstep_old_count = 1 THEN
        lockstep_o := (lockstep_old->>(lockstep_stride - 1))::%2$s;
        DELETE FROM %2$s t WHERE %15$s;
        GET DIAGNOSTICS lockstep_deleted = ROW_COUNT;
        IF lockstep_deleted <> 1 THEN
            PERFORM lockstep.diverged('delete', %10$L, 1, lockstep_deleted);
        END IF;
    ELSIF lockstep_kind = 'I' THEN
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
    RETURN true;
END
$body$
$f$, fn, a.table_name, cols, new_cols, lockstep.rows_of(a, 'lockstep_new', '(i - 1) % lockstep_stride = 0'),
      lockstep.rows_of(a, 'lockstep_old', 'i % lockstep_stride = 0'),
      lockstep.key_match(a, 't', 'n'), keys, lockstep.key_match(a, 't', 'g'), a.table_name, lockstep.key_match(a, 't', 'o'),
      set_cols, one_new_cols, one_values, one_old_key);
    RETURN fn;
END $gen$;


-- Writes lockstep.dispatch(), which calls each attached table's applier by a static call (cached
-- by PL/pgSQL) instead of dynamic SQL. Rewritten whenever the set of attached tables changes.
-- Dispatcher and appliers return a value so that each call is an expression that PL/pgSQL
-- evaluates directly, not a PERFORM, which runs a query through the executor.
CREATE FUNCTION lockstep.generate_dispatcher() RETURNS void
LANGUAGE plpgsql AS $gen$
DECLARE
    branches text;
    was_internal text := current_setting('lockstep.internal', true);
BEGIN
    SELECT string_agg(format('        WHEN %L THEN RETURN %s(kind, new_rows, old_rows, stride);', table_name, applier), E'\n' ORDER BY table_name)
      INTO branches FROM lockstep.attached WHERE applier IS NOT NULL;
    PERFORM set_config('lockstep.internal', 'on', true);
    EXECUTE format($f$
CREATE OR REPLACE FUNCTION lockstep.dispatch(tbl text, kind "char", new_rows jsonb, old_rows jsonb, stride int) RETURNS boolean
LANGUAGE plpgsql AS $body$
BEGIN
    CASE tbl
%s
    ELSE
        RAISE EXCEPTION 'lockstep: table %% is not attached on mirror node %%', tbl,
            (SELECT node_name FROM lockstep.node_state) USING ERRCODE = '55000';
    END CASE;
    RETURN NULL;
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

-- Sequence names as capture triggers carry them and collect reads them: JSON strings joined by commas.
CREATE FUNCTION lockstep.sequence_list(seqs text[]) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(string_agg(to_json(q)::text, ',' ORDER BY q), '') FROM unnest(seqs) q
$$;

-- Capture triggers do not fire under session_replication_role = replica, which the mirror's apply
-- needs and which bulk loaders and restore tools also set to skip triggers: a write to a mirrored
-- table in that mode would reach one node alone. This trigger fires in replica mode only (ENABLE
-- REPLICA), so ordinary writes never evaluate it, and refuses the write unless the session is one
-- of the coordinator's own (lockstep.applier, set at connection start on its mirror connections:
-- its WHEN condition keeps apply from calling the function) or Lockstep's internal work.
CREATE FUNCTION lockstep.refuse_replica_write() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('lockstep.internal', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'lockstep: % of mirrored table %.% on node % is refused under session_replication_role = replica: capture does not run in that mode, so the change would reach this node alone; run it with SET session_replication_role = DEFAULT',
        TG_OP, quote_ident(TG_TABLE_SCHEMA), quote_ident(TG_TABLE_NAME), (SELECT node_name FROM lockstep.node_state)
        USING ERRCODE = '55000';
END $$;

-- (Re)creates a table's capture triggers. Their argument lists the table's sequences as JSON
-- strings, so that a transaction reports the positions of the sequences of the tables it wrote
-- without a catalog query at commit; describe() therefore re-installs them when those change.
CREATE FUNCTION lockstep.install_capture(rel regclass, mode text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    was_internal text := current_setting('lockstep.internal', true);
    seqs text := lockstep.sequence_list(lockstep.table_sequences(rel));
BEGIN
    PERFORM set_config('lockstep.internal', 'on', true);
    EXECUTE format('DROP TRIGGER IF EXISTS lockstep_capture_i ON %s', rel);
    EXECUTE format('DROP TRIGGER IF EXISTS lockstep_capture_u ON %s', rel);
    EXECUTE format('DROP TRIGGER IF EXISTS lockstep_capture_d ON %s', rel);
    EXECUTE format('DROP TRIGGER IF EXISTS lockstep_capture_t ON %s', rel);
    EXECUTE format('DROP TRIGGER IF EXISTS lockstep_capture_row ON %s', rel);
    IF mode = 'statement' THEN
        EXECUTE format('CREATE TRIGGER lockstep_capture_i AFTER INSERT ON %s REFERENCING NEW TABLE AS lockstep_new'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION lockstep.capture_statement(%L)', rel, seqs);
        EXECUTE format('CREATE TRIGGER lockstep_capture_u AFTER UPDATE ON %s REFERENCING OLD TABLE AS lockstep_old'
                       ' NEW TABLE AS lockstep_new FOR EACH STATEMENT EXECUTE FUNCTION lockstep.capture_statement(%L)', rel, seqs);
        EXECUTE format('CREATE TRIGGER lockstep_capture_d AFTER DELETE ON %s REFERENCING OLD TABLE AS lockstep_old'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION lockstep.capture_statement(%L)', rel, seqs);
    ELSE
        EXECUTE format('CREATE TRIGGER lockstep_capture_row AFTER INSERT OR UPDATE OR DELETE ON %s'
                       ' FOR EACH ROW EXECUTE FUNCTION lockstep.capture_row(%L)', rel, seqs);
    END IF;
    EXECUTE format('CREATE TRIGGER lockstep_capture_t AFTER TRUNCATE ON %s'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION lockstep.capture_truncate()', rel);
    EXECUTE format('DROP TRIGGER IF EXISTS lockstep_replica_guard ON %s', rel);
    EXECUTE format('CREATE TRIGGER lockstep_replica_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s'
                   ' FOR EACH STATEMENT WHEN (current_setting(%L, true) IS DISTINCT FROM %L)'
                   ' EXECUTE FUNCTION lockstep.refuse_replica_write()', rel, 'lockstep.applier', 'on');
    EXECUTE format('ALTER TABLE %s ENABLE REPLICA TRIGGER lockstep_replica_guard', rel);
    PERFORM set_config('lockstep.internal', coalesce(was_internal, ''), true);
END $$;

-- Installs the capture triggers on one node. Idempotent.
CREATE FUNCTION lockstep.attach_local(rel regclass, mode text DEFAULT 'statement') RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = rel) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'lockstep: % is not a table and cannot be mirrored', rel USING ERRCODE = '42809';
    END IF;
    IF (SELECT relpersistence FROM pg_class WHERE oid = rel) = 't' THEN
        RAISE EXCEPTION 'lockstep: % is a temporary table and cannot be mirrored', rel USING ERRCODE = '42809';
    END IF;
    PERFORM lockstep.describe(rel, mode);
    PERFORM lockstep.install_capture(rel, mode);
END $$;

-- Attaches a table on the principal and records the attach so the mirror does the same in the
-- same two-phase commit.
CREATE FUNCTION lockstep.attach(rel regclass, mode text DEFAULT 'statement') RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM lockstep.ensure_capture();
    PERFORM lockstep.attach_local(rel, mode);
    PERFORM lockstep.append_entry(json_build_object('k', 'A', 't', lockstep.qualified(rel), 'q', mode)::text);
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
            IF (SELECT sequences FROM lockstep.attached WHERE table_name = a.table_name) IS DISTINCT FROM a.sequences THEN
                PERFORM lockstep.install_capture(a.table_name::regclass, a.capture_mode);
                -- Writes earlier in this transaction reported the old list: collect reports the new one too.
                IF current_setting('lockstep.capturing', true) = pg_current_xact_id()::text THEN
                    PERFORM set_config('lockstep.sequences', current_setting('lockstep.sequences') || coalesce(',' || nullif(
                        lockstep.sequence_list((SELECT sequences FROM lockstep.attached WHERE table_name = a.table_name)), ''), ''), true);
                END IF;
            END IF;
        END IF;
    END LOOP;
END $$;

-- Records the statement text of a DDL command for replay on the mirror (once per statement,
-- however many commands it ran) and refreshes the attachments.
CREATE FUNCTION lockstep.capture_ddl() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM lockstep.require_read_committed('DDL (' || left(current_query(), 60) || ')');
    PERFORM lockstep.ensure_capture();
    -- One client message may run several commands; current_query() holds them all.
    IF current_setting('lockstep.ddl_seen', true) IS DISTINCT FROM statement_timestamp() || md5(current_query()) THEN
        PERFORM set_config('lockstep.ddl_seen', statement_timestamp() || md5(current_query()), true);
        PERFORM lockstep.append_entry(json_build_object('k', 'S', 'q', current_query(), 'p', current_setting('search_path'))::text);
    END IF;
    PERFORM lockstep.refresh_attached();
END $$;

-- Tables created in this transaction without a primary key (yet).
CREATE FUNCTION lockstep.unkeyed() RETURNS text[]
LANGUAGE sql STABLE AS $$ SELECT coalesce(nullif(current_setting('lockstep.unkeyed', true), ''), '{}')::text[] $$;

-- Event triggers fire in every mode (ENABLE ALWAYS, below): under session_replication_role =
-- replica ordinary ones do not, and DDL run there would reach one node alone. Returns true when
-- the DDL is the coordinator's own apply on a mirror (nothing to capture); refuses it otherwise.
CREATE FUNCTION lockstep.ddl_in_replica_mode() RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('session_replication_role') <> 'replica' THEN
        RETURN false;
    END IF;
    IF current_setting('lockstep.applier', true) = 'on' THEN
        RETURN true;
    END IF;
    RAISE EXCEPTION 'lockstep: DDL on node % is refused under session_replication_role = replica: it would not be captured, so it would reach this node alone; run it with SET session_replication_role = DEFAULT',
        (SELECT node_name FROM lockstep.node_state) USING ERRCODE = '55000';
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
    IF lockstep.ddl_in_replica_mode() THEN
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
           OR (c.command_tag = 'ALTER TABLE' AND NOT lockstep.qualified(c.objid::regclass) = ANY (lockstep.unkeyed())) THEN
            CONTINUE;
        END IF;
        IF EXISTS (SELECT 1 FROM pg_index WHERE indrelid = c.objid AND indisprimary) THEN
            PERFORM lockstep.attach_local(c.objid::regclass);
            PERFORM lockstep.append_entry(json_build_object('k', 'A', 't', lockstep.qualified(c.objid::regclass), 'q', 'statement')::text);
        ELSIF c.command_tag <> 'ALTER TABLE' THEN
            -- Checked again at commit: a later statement of the transaction may still add the key.
            PERFORM set_config('lockstep.unkeyed', array_append(lockstep.unkeyed(), lockstep.qualified(c.objid::regclass))::text, true);
        END IF;
    END LOOP;
    -- Disabling a capture trigger, or the guard that stands in for them in replica mode, would
    -- let writes reach the principal alone.
    SELECT string_agg(DISTINCT a.table_name, ', ') INTO disabled
      FROM lockstep.attached a JOIN pg_trigger t ON t.tgrelid = a.table_name::regclass
     WHERE (t.tgname LIKE 'lockstep\_capture%' AND t.tgenabled <> 'O')
        OR (t.tgname = 'lockstep_replica_guard' AND t.tgenabled <> 'R');
    IF disabled IS NOT NULL THEN
        RAISE EXCEPTION 'lockstep: the capture triggers of mirrored table % must stay enabled; disabling them would let writes reach the principal alone',
            disabled USING ERRCODE = '55000';
    END IF;
END $$;

-- DROP commands are not listed at ddl_command_end; they are captured here.
CREATE FUNCTION lockstep.on_drop() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
    removed text;
BEGIN
    IF current_setting('lockstep.internal', true) = 'on' OR NOT EXISTS (
            SELECT 1 FROM pg_event_trigger_dropped_objects()
             WHERE NOT is_temporary AND (schema_name IS NULL OR schema_name <> 'lockstep')) THEN
        RETURN;
    END IF;
    IF lockstep.ddl_in_replica_mode() THEN
        RETURN;
    END IF;
    -- Dropping a capture trigger, or the replica-mode guard, would let writes reach one node
    -- alone; they go only with their table.
    SELECT string_agg(d.object_identity, ', ') INTO removed
      FROM pg_event_trigger_dropped_objects() d
     WHERE d.object_type = 'trigger' AND d.object_identity LIKE 'lockstep\_%'
       AND NOT EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects() t
                        WHERE t.object_type = 'table' AND d.object_identity LIKE '% on ' || t.object_identity);
    IF removed IS NOT NULL THEN
        RAISE EXCEPTION 'lockstep: trigger % of a mirrored table must stay; without it writes would reach one node alone',
            removed USING ERRCODE = '55000';
    END IF;
    PERFORM lockstep.capture_ddl();
END $$;

CREATE EVENT TRIGGER lockstep_ddl ON ddl_command_end EXECUTE FUNCTION lockstep.on_ddl();
CREATE EVENT TRIGGER lockstep_drop ON sql_drop EXECUTE FUNCTION lockstep.on_drop();
ALTER EVENT TRIGGER lockstep_ddl ENABLE ALWAYS;
ALTER EVENT TRIGGER lockstep_drop ENABLE ALWAYS;

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

-- Called on the principal at commit. Checks the fence, turns the transaction's change set into
-- one journal record and returns that record; all NULL when nothing mirrored changed, so the
-- transaction commits on the principal alone.
-- p_alone: the coordinator commits on the principal alone (exposed); null when it will refuse any
-- change anyway (no quorum) and only needs to know whether there is one. That is allowed only while
-- the principal records its mirror as behind, and a lockstep commit only while it records it
-- SYNCHRONIZED: a coordinator whose view is stale is refused with 40001 (retry) instead of
-- leaving a transaction off a synchronized mirror, or putting one on a mirror that is behind.
CREATE FUNCTION lockstep.collect(p_gid text, p_alone boolean DEFAULT false, OUT rec_epoch bigint, OUT rec_seq bigint,
                                 OUT rec_origin text, OUT rec_committed_at text, OUT rec_changes text) RETURNS record
LANGUAGE plpgsql AS $$
DECLARE
    entries text;
    seqs text;
    seq_names json;
    pos bigint;
BEGIN
    IF pg_current_xact_id_if_assigned() IS NULL THEN
        RETURN;
    END IF;
    IF p_alone THEN
        PERFORM lockstep.require_mirroring_path(p_gid, p_alone);
    END IF;
    -- Deferred triggers would otherwise run at PREPARE, after the drain, and their writes would
    -- reach the principal alone: run them now, with the guard lifted so it does not refuse.
    -- Assignments, not PERFORMs (each a query through the executor): this runs on every commit.
    entries := set_config('lockstep.collected', pg_current_xact_id()::text, true);
    entries := set_config('lockstep.draining', pg_current_xact_id()::text, true);
    SET CONSTRAINTS ALL IMMEDIATE;
    entries := set_config('lockstep.draining', '', true);
    -- After the drain: its triggers may have made the transaction's first mirrored write.
    IF current_setting('lockstep.guard_rearmed', true) = 'on' THEN
        -- Rare (see refuse_uncollected): a scan of a table of a few rows per open transaction.
        DELETE FROM lockstep.capture_guard WHERE xid = pg_current_xact_id();
    ELSIF nullif(current_setting('lockstep.guard', true), '') IS NOT NULL THEN
        DELETE FROM lockstep.capture_guard WHERE ctid = current_setting('lockstep.guard')::tid;
    END IF;
    IF current_setting('lockstep.capturing', true) IS DISTINCT FROM pg_current_xact_id()::text THEN
        RETURN;
    END IF;
    -- Anything captured from here on sets the guard again, so a late write fails the commit.
    entries := set_config('lockstep.capturing', '', true);
    IF lockstep.unkeyed() <> '{}' THEN
        PERFORM lockstep.refuse_unkeyed_tables(lockstep.unkeyed());
    END IF;
    -- lockstep.close_entry(), inline.
    entries := current_setting('lockstep.changes') || CASE WHEN current_setting('lockstep.group') = '' THEN '' ELSE ']}' END;
    IF current_setting('lockstep.spilled') = 'on' THEN
        WITH drained AS (DELETE FROM lockstep.capture WHERE xid = pg_current_xact_id() RETURNING ord, chunk)
        SELECT string_agg(chunk, '' ORDER BY ord) || entries INTO entries FROM drained;
    END IF;
    IF entries = '' THEN
        RETURN;
    END IF;
    -- The capture triggers listed the sequences of the tables written, as JSON strings after a
    -- comma each: a loop of assignments reads their positions, no query.
    IF current_setting('lockstep.sequences') <> '' THEN
        seq_names := ('[' || substr(current_setting('lockstep.sequences'), 2) || ']')::json;
        FOR i IN 0 .. json_array_length(seq_names) - 1 LOOP
            -- to_regclass: the transaction may have dropped the sequence since it wrote the table.
            pos := pg_sequence_last_value(to_regclass(seq_names->>i));
            IF pos IS NOT NULL THEN
                seqs := coalesce(seqs || ',', '{') || (seq_names->i)::text || ':' || pos;
            END IF;
        END LOOP;
        seqs := seqs || '}';
    END IF;
    -- The node_state row was read under the shared lock by the first capture (fence); the
    -- conditions repeat the fence so that a record is never written at another role or epoch.
    INSERT INTO lockstep.journal AS j (epoch, seq, gid, origin, committed_at, changes)
    SELECT s.epoch, nextval('lockstep.journal_seq'), p_gid, s.node_name, clock_timestamp(),
           ('{"e":[' || substr(entries, 2) || '],"s":' || coalesce(seqs, '{}') || '}')::json
      FROM lockstep.node_state s
     WHERE s.role = 'principal' AND s.epoch = nullif(current_setting('lockstep.epoch', true), '')::bigint
       -- The lockstep path's check rides on the insert: no extra read on the hot path.
       AND (p_alone IS NOT FALSE OR s.mirroring_state = 'SYNCHRONIZED')
    RETURNING j.epoch, j.seq, j.origin, to_json(j.committed_at) #>> '{}', j.changes::text
         INTO rec_epoch, rec_seq, rec_origin, rec_committed_at, rec_changes;
    IF rec_epoch IS NULL THEN
        PERFORM lockstep.fence();
        IF p_alone IS FALSE THEN
            PERFORM lockstep.require_mirroring_path(p_gid, p_alone);
        END IF;
        RAISE EXCEPTION 'lockstep: node % refused the journal record of transaction %',
            (SELECT node_name FROM lockstep.node_state), p_gid USING ERRCODE = '25006';
    END IF;
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
    EXECUTE format('SELECT %s($1, $2, $3, 1)', a.applier) USING (e->>'k')::"char", e->'n', e->'o';
END $$;

-- Moves a sequence forward to at least the position the principal reported; callers call it only
-- for a sequence they saw behind. The session lock serialises concurrent applies so that a slower
-- one never moves it back. Assignments, not PERFORMs: each PERFORM is a query through the
-- executor, and this runs on most commits.
CREATE FUNCTION lockstep.advance_sequence(seq text, pos bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    k bigint := hashtextextended('lockstep.sequence:' || seq, 0);
    rel regclass := seq::regclass;
    ignored text;
BEGIN
    -- No exception block (a subtransaction on every commit): should the statement be cancelled
    -- between lock and unlock, the next apply on this session times out, the pool drops the
    -- connection and the session lock goes with it.
    ignored := pg_advisory_lock(k)::text;
    IF coalesce(pg_sequence_last_value(rel), -9223372036854775808) < pos THEN
        ignored := setval(rel, pos, true)::text;
    END IF;
    ignored := pg_advisory_unlock(k)::text;
END $$;

-- Called on the mirror, inside the mirror transaction that then commits: checks the fence,
-- applies a journal record produced by collect() and stores the same record.
CREATE FUNCTION lockstep.apply(p_epoch bigint, p_seq bigint, p_gid text, p_origin text, p_committed_at timestamptz,
                               p_changes text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    s lockstep.node_state;
    applied boolean;
BEGIN
    SELECT * INTO s FROM lockstep.node_state;
    IF s.role <> 'mirror' OR s.epoch <> p_epoch THEN
        RAISE EXCEPTION 'lockstep: fenced: node % is % at epoch %, the journal record % is of epoch %',
            s.node_name, s.role, s.epoch, p_gid, p_epoch USING ERRCODE = '25006';
    END IF;
    applied := lockstep.apply_record(p_epoch, p_seq, p_gid, p_origin, p_committed_at, p_changes);
END $$;

-- Catch-up: applies a journal record the mirror lacks, of its epoch or an earlier one, outside
-- the commit protocol (the mirror commits it directly).
CREATE FUNCTION lockstep.replay(p_epoch bigint, p_seq bigint, p_gid text, p_origin text, p_committed_at timestamptz,
                                p_changes text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    s lockstep.node_state;
    applied boolean;
BEGIN
    SELECT * INTO s FROM lockstep.node_state;
    IF s.role <> 'mirror' OR s.epoch < p_epoch THEN
        RAISE EXCEPTION 'lockstep: node % is % at epoch %; it cannot replay journal record % of epoch %',
            s.node_name, s.role, s.epoch, p_gid, p_epoch USING ERRCODE = '25006';
    END IF;
    applied := lockstep.apply_record(p_epoch, p_seq, p_gid, p_origin, p_committed_at, p_changes);
END $$;

-- Catch-up in bulk: one round trip for a run of records, applied in the order given.
CREATE FUNCTION lockstep.replay_batch(p_epochs bigint[], p_seqs bigint[], p_gids text[], p_origins text[],
                                      p_committed_at timestamptz[], p_changes text[]) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    n int := coalesce(array_length(p_epochs, 1), 0);
BEGIN
    -- The principal's record wins over an in-doubt bar of the same transaction: a bar put here
    -- while the principal's rollback of its prepared copy failed, after which this mirror was
    -- written off and in-doubt resolution committed the transaction with the principal alone.
    DELETE FROM lockstep.journal WHERE epoch = 0 AND gid = ANY (p_gids);
    FOR i IN 1 .. n LOOP
        PERFORM lockstep.replay(p_epochs[i], p_seqs[i], p_gids[i], p_origins[i], p_committed_at[i], p_changes[i]);
    END LOOP;
    RETURN n;
END $$;

-- Empties, in one TRUNCATE, the tables of the run of TRUNCATE entries that starts at
-- entries[first] and the attached tables that reference them; returns the index after the run.
-- Without CASCADE: a table the mirror alone holds (not mirrored) that references one of them must
-- not be emptied behind its owner's back, so the transaction is refused instead and stays
-- unapplied on both nodes.
CREATE FUNCTION lockstep.truncate_run(entries jsonb, first int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    n int := jsonb_array_length(entries);
    last int := first;
    tables text[];
    a lockstep.attached;
    detail text;
BEGIN
    WHILE last < n AND entries->last->>'k' = 'T' LOOP
        SELECT * INTO a FROM lockstep.attached WHERE table_name = entries->last->>'t';
        IF NOT FOUND THEN
            RAISE EXCEPTION 'lockstep: table % is not attached on mirror node %', entries->last->>'t',
                (SELECT node_name FROM lockstep.node_state) USING ERRCODE = '55000';
        END IF;
        tables := tables || a.table_name;
        last := last + 1;
    END LOOP;
    -- PostgreSQL empties a table together with every table that references it, or refuses, so
    -- the principal's statement emptied those too; their entries may come later, after rows that
    -- user TRUNCATE triggers wrote. Attached ones are emptied now; one only the mirror holds makes
    -- the TRUNCATE fail below.
    tables := tables || ARRAY(
        WITH RECURSIVE referencing(rel) AS (
            SELECT c.conrelid FROM pg_constraint c
             WHERE c.contype = 'f' AND c.confrelid IN (SELECT t::regclass FROM unnest(tables) t)
            UNION
            SELECT c.conrelid FROM pg_constraint c JOIN referencing r ON c.confrelid = r.rel WHERE c.contype = 'f')
        SELECT a2.table_name FROM lockstep.attached a2 JOIN referencing r ON a2.table_name::regclass = r.rel
         WHERE a2.table_name <> ALL (tables));
    BEGIN
        EXECUTE 'TRUNCATE ' || array_to_string(tables, ', ');
    EXCEPTION WHEN feature_not_supported THEN
        GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
        RAISE EXCEPTION 'lockstep: mirror node % refused TRUNCATE of %: a table that is not mirrored references it there (%); truncate or detach that table on the mirror first, or attach it',
            (SELECT node_name FROM lockstep.node_state), array_to_string(tables, ', '), detail USING ERRCODE = '0A000';
    END;
    RETURN last;
END $$;

-- Returns true so that callers can call it in an assignment rather than a PERFORM (see dispatch).
CREATE FUNCTION lockstep.apply_record(p_epoch bigint, p_seq bigint, p_gid text, p_origin text, p_committed_at timestamptz,
                                      p_changes text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    c jsonb := p_changes::jsonb;
    entries jsonb := c->'e';
    e jsonb;
    n int := coalesce(jsonb_array_length(entries), 0);
    i int := 0;
    applied boolean;
BEGIN
    IF current_setting('session_replication_role') <> 'replica' THEN
        RAISE EXCEPTION 'lockstep: apply on node % needs session_replication_role = replica',
            (SELECT node_name FROM lockstep.node_state) USING ERRCODE = '55000';
    END IF;
    -- Indexed rather than FOR ... IN SELECT: no cursor per record.
    WHILE i < n LOOP
        e := entries->i;
        i := i + 1;
        IF e ? 'r' THEN
            -- A row-level UPDATE entry: each row's new and old image in turn.
            applied := lockstep.dispatch(e->>'t', 'U', e->'r', e->'r', 2);
        ELSIF e->>'k' IN ('I', 'U', 'D') THEN
            applied := lockstep.dispatch(e->>'t', (e->>'k')::"char", e->'n', e->'o', 1);
        ELSIF e->>'k' = 'T' THEN
            -- The tables one TRUNCATE emptied on the principal (CASCADE included) give consecutive
            -- entries: emptied together here too, so that references among them hold.
            i := lockstep.truncate_run(entries, i - 1);
        ELSE
            PERFORM lockstep.apply_entry(e);
        END IF;
    END LOOP;
    PERFORM lockstep.advance_sequence(key, value::bigint) FROM jsonb_each_text(c->'s')
      WHERE coalesce(lockstep.sequence_position(key), -9223372036854775808) < value::bigint;
    INSERT INTO lockstep.journal (epoch, seq, gid, origin, committed_at, changes)
    VALUES (p_epoch, p_seq, p_gid, p_origin, p_committed_at, p_changes::json);
    RETURN true;
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


-- =================================================================================================
-- Verify and repair (Partnership.verify / Partnership.repair).
-- Verify compares, for every attached table, its definition (schema_facts) and a checksum over the
-- columns both nodes have; for a table whose checksum differs it streams (key, row hash) from both
-- nodes in one key order (row_hashes_query) and merges the streams in Java. Repair copies the
-- principal's rows for the differing keys to the mirror (rows_by_key, then repair_rows there).
-- Every function here only reads, except repair_rows, which runs on the mirror alone.
-- =================================================================================================

-- The primary key of a table, as raw column names in key order.
CREATE FUNCTION lockstep.key_names(rel regclass) RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey::int2[], a.attnum))
      FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
     WHERE i.indrelid = rel AND i.indisprimary
$$;

-- The listed columns of the row t, spelled as a list for ROW(...) or SELECT.
CREATE FUNCTION lockstep.column_list(cols text[], alias text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT string_agg(alias || '.' || quote_ident(c), ', ' ORDER BY o) FROM unnest(cols) WITH ORDINALITY u(c, o)
$$;

-- Per-table checksum over the given columns only (those both nodes have): row count and an
-- order-independent sum of row hashes, with the output settings capture pins.
CREATE FUNCTION lockstep.checksum(tbl text, cols text[], OUT row_count bigint, OUT digest numeric)
LANGUAGE plpgsql STABLE
SET extra_float_digits = 3 SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET bytea_output = 'hex' AS $$
BEGIN
    EXECUTE format('SELECT count(*), coalesce(sum((''x'' || left(md5(ROW(%s)::text), 15))::bit(60)::bigint), 0) FROM %s t',
                   lockstep.column_list(cols, 't'), lockstep.qualified(tbl::regclass))
       INTO row_count, digest;
END $$;

-- The query verify streams from each node: each row's key (the given key columns, the principal's
-- primary key, as a JSON object's text) and the md5 of the given columns' text, ordered by the
-- key's UTF-8 bytes, which is the order of Unicode code points that the Java merge compares keys
-- in. The caller pins the output settings capture pins.
CREATE FUNCTION lockstep.row_hashes_query(tbl text, cols text[], keys text[]) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT format('SELECT s.k, s.h FROM (SELECT jsonb_build_object(%s)::text AS k, md5(ROW(%s)::text) AS h FROM %s t) s'
                  ' ORDER BY convert_to(s.k, ''UTF8'')',
                  (SELECT string_agg(format('%L, t.%I', k, k), ', ' ORDER BY o) FROM unnest(keys) WITH ORDINALITY u(k, o)),
                  lockstep.column_list(cols, 't'), lockstep.qualified(tbl::regclass))
$$;

-- A table's rows for the given keys (a JSON array of key objects as row_hashes_query spells
-- them), as row text in the form capture writes and apply parses. Keys without a row are left out.
CREATE FUNCTION lockstep.rows_by_key(tbl text, p_keys jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET extra_float_digits = 3 SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET bytea_output = 'hex' AS $$
DECLARE
    rel regclass := tbl::regclass;
    keys text[] := lockstep.key_names(rel);
    found jsonb;
BEGIN
    EXECUTE format('SELECT coalesce(jsonb_agg(t::text), ''[]'') FROM %1$s t'
                   ' WHERE (%2$s) IN (SELECT %3$s FROM jsonb_populate_recordset(NULL::%1$s, $1) k)',
                   lockstep.qualified(rel), lockstep.column_list(keys, 't'), lockstep.column_list(keys, 'k'))
       INTO found USING p_keys;
    RETURN found;
END $$;

-- Repair, on the mirror: deletes the rows with the given keys, then inserts the given rows (the
-- principal's, as rows_by_key spells them). Runs with session_replication_role = replica, so that
-- neither capture nor user triggers nor foreign key actions fire. Returns {deleted, inserted}.
CREATE FUNCTION lockstep.repair_rows(tbl text, p_keys jsonb, p_rows jsonb) RETURNS bigint[]
LANGUAGE plpgsql
SET extra_float_digits = 3 SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET bytea_output = 'hex' AS $$
DECLARE
    a lockstep.attached;
    cols text;
    deleted bigint;
    inserted bigint;
BEGIN
    IF current_setting('session_replication_role') <> 'replica' THEN
        RAISE EXCEPTION 'lockstep: repair on node % needs session_replication_role = replica',
            (SELECT node_name FROM lockstep.node_state) USING ERRCODE = '55000';
    END IF;
    SELECT * INTO a FROM lockstep.attached WHERE table_name = lockstep.qualified(tbl::regclass);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lockstep: table % is not attached on node %', tbl,
            (SELECT node_name FROM lockstep.node_state) USING ERRCODE = '55000';
    END IF;
    EXECUTE format('DELETE FROM %1$s t USING jsonb_populate_recordset(NULL::%1$s, $1) k WHERE %2$s',
                   a.table_name, lockstep.key_match(a, 't', 'k')) USING p_keys;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    cols := array_to_string(a.data_columns, ',');
    EXECUTE format('INSERT INTO %1$s (%2$s) OVERRIDING SYSTEM VALUE SELECT %2$s FROM %3$s n',
                   a.table_name, cols, lockstep.rows_of(a, '$1', 'true')) USING p_rows;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    RETURN ARRAY[deleted, inserted];
END $$;

-- Repair acts on a node only while it holds the expected role at the coordinator's epoch and, on
-- the principal, only while it records its mirror SYNCHRONIZED (a mirror that is behind catches
-- up from the journal instead). Reading node_state takes the shared lock that a role change waits
-- for, so no repair straddles a role change (invariant I4).
CREATE FUNCTION lockstep.require_repair_role(p_role text, p_epoch bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    s lockstep.node_state;
BEGIN
    SELECT * INTO s FROM lockstep.node_state;
    IF s.role <> p_role OR s.epoch <> p_epoch THEN
        RAISE EXCEPTION 'lockstep: fenced: node % is % at epoch %; repair expected it % at epoch %',
            s.node_name, s.role, s.epoch, p_role, p_epoch USING ERRCODE = '25006';
    END IF;
    IF p_role = 'principal' AND s.mirroring_state <> 'SYNCHRONIZED' THEN
        RAISE EXCEPTION 'lockstep: principal % records its mirror %; repair needs a SYNCHRONIZED mirror (catch-up brings a mirror that is behind)',
            s.node_name, s.mirroring_state USING ERRCODE = '55000';
    END IF;
END $$;

-- What verify compares of a table's definition on both nodes: one row per object (the table, each
-- column, the column order, each constraint, index and user trigger, the attachment) with its
-- definition. No rows when the table does not exist here.
CREATE FUNCTION lockstep.schema_facts(tbl text) RETURNS TABLE (object text, definition text)
LANGUAGE sql STABLE AS $$
    WITH rel AS (SELECT c.oid, c.relkind, c.relpersistence FROM pg_class c WHERE c.oid = to_regclass(tbl))
    SELECT 'table', CASE rel.relkind WHEN 'p' THEN 'partitioned table' WHEN 'r' THEN 'table' ELSE 'relkind ' || rel.relkind::text END
                    || CASE rel.relpersistence WHEN 'u' THEN ', unlogged' WHEN 't' THEN ', temporary' ELSE '' END
      FROM rel
    UNION ALL
    SELECT 'column ' || quote_ident(a.attname),
           format_type(a.atttypid, a.atttypmod)
           || CASE WHEN a.attcollation <> ty.typcollation THEN ' COLLATE ' || quote_ident(co.collname) ELSE '' END
           || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
           || CASE a.attidentity WHEN 'a' THEN ' GENERATED ALWAYS AS IDENTITY'
                                 WHEN 'd' THEN ' GENERATED BY DEFAULT AS IDENTITY' ELSE '' END
           || CASE WHEN a.attgenerated <> '' THEN ' GENERATED ALWAYS AS (' || pg_get_expr(d.adbin, d.adrelid) || ')'
                   WHEN d.adbin IS NOT NULL THEN ' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid) ELSE '' END
      FROM rel JOIN pg_attribute a ON a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped
      JOIN pg_type ty ON ty.oid = a.atttypid
      LEFT JOIN pg_collation co ON co.oid = a.attcollation
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    UNION ALL
    SELECT 'column order', string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
      FROM rel JOIN pg_attribute a ON a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped
    HAVING count(*) > 0
    UNION ALL
    SELECT 'constraint ' || quote_ident(c.conname), pg_get_constraintdef(c.oid)
      FROM rel JOIN pg_constraint c ON c.conrelid = rel.oid
    UNION ALL
    SELECT 'index ' || quote_ident(i.relname), pg_get_indexdef(i.oid)
      FROM rel JOIN pg_index x ON x.indrelid = rel.oid JOIN pg_class i ON i.oid = x.indexrelid
    UNION ALL
    SELECT 'trigger ' || quote_ident(g.tgname), pg_get_triggerdef(g.oid)
           || CASE g.tgenabled WHEN 'D' THEN ' (disabled)' WHEN 'R' THEN ' (enabled replica)' WHEN 'A' THEN ' (enabled always)' ELSE '' END
      FROM rel JOIN pg_trigger g ON g.tgrelid = rel.oid AND NOT g.tgisinternal
    UNION ALL
    SELECT 'attachment', 'attached, ' || a.capture_mode || ' capture' FROM lockstep.attached a WHERE a.table_name = tbl
$$;

-- The columns of a table in order, raw names; empty when it does not exist here.
CREATE FUNCTION lockstep.column_names(tbl text) RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(a.attname::text ORDER BY a.attnum), '{}')
      FROM pg_attribute a WHERE a.attrelid = to_regclass(tbl) AND a.attnum > 0 AND NOT a.attisdropped
$$;

-- ============================================================================================
-- Seeding, divergence and journal retention (issue 4, items 3-5)
-- ============================================================================================

-- On a principal: the epoch at which it recorded that its mirror must be seeded rather than
-- caught up (its journal no longer holds what the mirror lacks, or the mirror diverged). The mark
-- holds only at that epoch, so a role change ends it without touching it.
-- On every node: the journal position below which it deleted its journal records, every one of
-- them held by both nodes when deleted (see trim_journal). Catch-up takes a record of the
-- partner below the mirror's position as held.
ALTER TABLE lockstep.node_state
    ADD COLUMN mirror_needs_seed_epoch bigint,
    ADD COLUMN journal_trimmed_epoch bigint NOT NULL DEFAULT 0,
    ADD COLUMN journal_trimmed_seq   bigint NOT NULL DEFAULT 0,
    -- The newest record it deleted so: a mirror whose journal stops below this one lacks records
    -- that are gone (the trim position itself is an exclusive bound, often one past it).
    ADD COLUMN journal_trimmed_last_epoch bigint NOT NULL DEFAULT 0,
    ADD COLUMN journal_trimmed_last_seq   bigint NOT NULL DEFAULT 0,
    -- The latest epoch whose journal this node dropped at its limit: transactions it committed
    -- alone then cannot be listed if it ever returns after a forced service.
    ADD COLUMN journal_dropped_epoch bigint NOT NULL DEFAULT 0;

-- Transactions a returning node held that the principal lacked (possible only after forced
-- service): their journal records, row images included, with their original position. Kept on
-- the principal that found them; the node is then re-seeded.
CREATE TABLE lockstep.divergence_report (
    node_name       text        NOT NULL,      -- the node that held them
    epoch           bigint      NOT NULL,
    seq             bigint      NOT NULL,
    gid             text        NOT NULL,
    origin          text        NOT NULL,
    committed_at    timestamptz NOT NULL,
    changes         json        NOT NULL,
    principal_name  text        NOT NULL,      -- the principal that lacked them
    principal_epoch bigint      NOT NULL,
    detected_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (node_name, epoch, seq)
);

-- Whether this principal records that its mirror must be seeded, at its current epoch.
CREATE FUNCTION lockstep.mirror_needs_seeding() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT role = 'principal' AND mirror_needs_seed_epoch IS NOT DISTINCT FROM epoch FROM lockstep.node_state
$$;

-- Records (p_needed) or clears the mark, only on the principal of p_epoch.
CREATE FUNCTION lockstep.mark_mirror_for_seeding(p_epoch bigint, p_needed boolean) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE lockstep.node_state SET mirror_needs_seed_epoch = CASE WHEN p_needed THEN p_epoch END
     WHERE role = 'principal' AND epoch = p_epoch;
    RETURN FOUND;
END $$;

-- Whether this node holds nothing of a partnership yet: no attached table, no journal record,
-- never trimmed. Such a mirror is seeded when its principal holds something.
CREATE FUNCTION lockstep.is_blank() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT NOT EXISTS (SELECT 1 FROM lockstep.attached)
       AND NOT EXISTS (SELECT 1 FROM lockstep.journal WHERE epoch > 0)
       AND (SELECT journal_trimmed_epoch = 0 FROM lockstep.node_state)
$$;

-- A blank node joins as mirror at its principal's epoch (it was installed at epoch 1).
CREATE FUNCTION lockstep.enrol_as_mirror(p_partnership text, p_epoch bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    s lockstep.node_state;
BEGIN
    LOCK TABLE lockstep.node_state IN ACCESS EXCLUSIVE MODE;
    SELECT * INTO s FROM lockstep.node_state;
    IF s.partnership <> p_partnership OR s.role <> 'mirror' OR s.epoch > p_epoch OR NOT lockstep.is_blank() THEN
        RAISE EXCEPTION 'lockstep: node % (% of partnership % at epoch %) is not a blank mirror; it cannot join partnership % at epoch %',
            s.node_name, s.role, s.partnership, s.epoch, p_partnership, p_epoch USING ERRCODE = '55000';
    END IF;
    UPDATE lockstep.node_state SET epoch = p_epoch, changed_at = clock_timestamp();
END $$;

-- Journal use, for the retention limit: records (beyond in-doubt bars), how old the oldest is,
-- and how many are of the current epoch.
CREATE FUNCTION lockstep.journal_usage(OUT records bigint, OUT oldest_age_ms bigint, OUT current_epoch_records bigint)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    e bigint := (SELECT epoch FROM lockstep.node_state);
BEGIN
    SELECT count(*), count(*) FILTER (WHERE j.epoch = e) INTO records, current_epoch_records
      FROM lockstep.journal j WHERE j.epoch > 0;
    SELECT floor(extract(epoch FROM clock_timestamp() - j.committed_at) * 1000)::bigint INTO oldest_age_ms
      FROM lockstep.journal j WHERE j.epoch > 0 ORDER BY j.epoch, j.seq LIMIT 1;
    oldest_age_ms := coalesce(oldest_age_ms, 0);
END $$;

-- Deletes the journal records below a position that both nodes hold, and remembers the position.
CREATE FUNCTION lockstep.trim_journal(p_epoch bigint, p_seq bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
    last_epoch bigint;
    last_seq bigint;
BEGIN
    WITH deleted AS (DELETE FROM lockstep.journal WHERE epoch > 0 AND (epoch, seq) < (p_epoch, p_seq) RETURNING epoch, seq)
    SELECT count(*) OVER (), d.epoch, d.seq INTO n, last_epoch, last_seq
      FROM deleted d ORDER BY d.epoch DESC, d.seq DESC LIMIT 1;
    UPDATE lockstep.node_state SET journal_trimmed_epoch = p_epoch, journal_trimmed_seq = p_seq
     WHERE (journal_trimmed_epoch, journal_trimmed_seq) < (p_epoch, p_seq);
    UPDATE lockstep.node_state SET journal_trimmed_last_epoch = last_epoch, journal_trimmed_last_seq = last_seq
     WHERE last_epoch IS NOT NULL AND (journal_trimmed_last_epoch, journal_trimmed_last_seq) < (last_epoch, last_seq);
    RETURN coalesce(n, 0);
END $$;

-- On a principal whose mirror must be seeded: its records of the current epoch are no use to
-- anyone (only this principal wrote them, and the mirror will get a copy of the tables instead).
-- Records of earlier epochs stay: they tell a returning node's own transactions from divergent ones.
CREATE FUNCTION lockstep.drop_current_epoch_journal(p_epoch bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    IF NOT lockstep.mirror_needs_seeding() OR (SELECT epoch FROM lockstep.node_state) <> p_epoch THEN
        RAISE EXCEPTION 'lockstep: node % does not record its mirror for seeding at epoch %; its journal is still needed',
            (SELECT node_name FROM lockstep.node_state), p_epoch USING ERRCODE = '55000';
    END IF;
    UPDATE lockstep.node_state SET journal_dropped_epoch = p_epoch;
    DELETE FROM lockstep.journal WHERE epoch = p_epoch;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- What a new mirror needs to create an attached table it lacks, from this node's catalog, in
-- order: 1 sequences its defaults draw from, 2 the table with its columns, 3 its constraints but
-- foreign keys, 4 its other indexes, 5 sequence ownership, 6 foreign keys (after every table).
-- Other objects (types, functions, views, triggers) are not created.
CREATE FUNCTION lockstep.seed_ddl(rel regclass) RETURNS TABLE (step int, statement text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    tbl text := lockstep.qualified(rel);
    cols text;
BEGIN
    RETURN QUERY SELECT 0, format('CREATE SCHEMA IF NOT EXISTS %I', n.nspname)
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel;
    -- Sequences named in defaults (serial, nextval), not identity sequences (created with their column).
    RETURN QUERY SELECT 1, format('CREATE SEQUENCE IF NOT EXISTS %s AS %s INCREMENT %s MINVALUE %s MAXVALUE %s START %s CACHE %s %s',
                                  lockstep.qualified(s.seqrelid), format_type(s.seqtypid, NULL), s.seqincrement, s.seqmin,
                                  s.seqmax, s.seqstart, s.seqcache, CASE WHEN s.seqcycle THEN 'CYCLE' ELSE 'NO CYCLE' END)
      FROM pg_sequence s
     WHERE lockstep.qualified(s.seqrelid) = ANY (lockstep.table_sequences(rel))
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid
                                                 AND d.deptype = 'i');
    SELECT string_agg(format('%I %s%s%s%s%s', a.attname, format_type(a.atttypid, a.atttypmod),
               CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                    THEN ' COLLATE ' || (SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co
                                          JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation)
                    ELSE '' END,
               CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END,
               CASE WHEN a.attgenerated = 's' THEN ' GENERATED ALWAYS AS (' || pg_get_expr(ad.adbin, ad.adrelid) || ') STORED'
                    WHEN a.attgenerated <> '' THEN ' GENERATED ALWAYS AS (' || pg_get_expr(ad.adbin, ad.adrelid) || ')'
                    WHEN ad.adbin IS NOT NULL THEN ' DEFAULT ' || pg_get_expr(ad.adbin, ad.adrelid)
                    ELSE '' END,
               CASE WHEN a.attidentity IN ('a', 'd') THEN
                    format(' GENERATED %s AS IDENTITY (SEQUENCE NAME %s INCREMENT %s MINVALUE %s MAXVALUE %s START %s CACHE %s %s)',
                           CASE a.attidentity WHEN 'a' THEN 'ALWAYS' ELSE 'BY DEFAULT' END,
                           lockstep.qualified(s.seqrelid), s.seqincrement, s.seqmin, s.seqmax, s.seqstart, s.seqcache,
                           CASE WHEN s.seqcycle THEN 'CYCLE' ELSE 'NO CYCLE' END)
                    ELSE '' END), ', ' ORDER BY a.attnum)
      INTO cols
      FROM pg_attribute a
      JOIN pg_type t ON t.oid = a.atttypid
      LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
      LEFT JOIN pg_sequence s ON a.attidentity IN ('a', 'd')
                             AND s.seqrelid = pg_get_serial_sequence(tbl, a.attname)::regclass
     WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped;
    RETURN QUERY SELECT 2, format('CREATE TABLE %s (%s)', tbl, coalesce(cols, ''));
    RETURN QUERY SELECT 3, format('ALTER TABLE %s ADD CONSTRAINT %I %s', tbl, co.conname, pg_get_constraintdef(co.oid))
      FROM pg_constraint co WHERE co.conrelid = rel AND co.contype IN ('p', 'u', 'c', 'x') ORDER BY co.contype = 'p' DESC, co.conname;
    RETURN QUERY SELECT 4, pg_get_indexdef(i.indexrelid)
      FROM pg_index i WHERE i.indrelid = rel
       AND NOT EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid AND co.conrelid = rel);
    RETURN QUERY SELECT 5, format('ALTER SEQUENCE %s OWNED BY %s.%I', lockstep.qualified(d.objid), tbl, a.attname)
      FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
     WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = rel AND d.deptype = 'a'
       AND (SELECT relkind FROM pg_class WHERE oid = d.objid) = 'S';
    RETURN QUERY SELECT 6, format('ALTER TABLE %s ADD CONSTRAINT %I %s', tbl, co.conname, pg_get_constraintdef(co.oid))
      FROM pg_constraint co WHERE co.conrelid = rel AND co.contype = 'f' ORDER BY co.conname;
END $$;

-- The principal's side of a divergence report: stores the returning node's records it lacks.
CREATE FUNCTION lockstep.report_divergence(p_node text, p_epochs bigint[], p_seqs bigint[], p_gids text[], p_origins text[],
                                           p_committed_at timestamptz[], p_changes text[]) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    s lockstep.node_state;
    n int;
BEGIN
    SELECT * INTO s FROM lockstep.node_state;
    INSERT INTO lockstep.divergence_report (node_name, epoch, seq, gid, origin, committed_at, changes, principal_name, principal_epoch)
    SELECT p_node, r.e, r.q, r.g, r.o, r.c, r.x::json, s.node_name, s.epoch
      FROM unnest(p_epochs, p_seqs, p_gids, p_origins, p_committed_at, p_changes) AS r(e, q, g, o, c, x)
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
