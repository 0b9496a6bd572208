package dev.lockstep.it;

import dev.lockstep.CaptureMode;
import dev.lockstep.LockstepDataSource;
import dev.lockstep.VerifyReport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.List;

import static dev.lockstep.it.TwoNodes.rows;
import static dev.lockstep.it.TwoNodes.value;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Every kind of row change is captured and applied, in both capture modes. */
class CaptureTest extends OnTwoNodes {

    @ParameterizedTest
    @EnumSource(CaptureMode.class)
    void insertsUpdatesDeletesTruncatesAndKeyChangesReachTheMirror(CaptureMode mode) throws Exception {
        TwoNodes.Pair pair = nodes.newPair("capture");
        try (LockstepDataSource ds = pair.start(); Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE parent (id int PRIMARY KEY, name text)");
            st.execute("CREATE TABLE child (a int, b text, parent_id int REFERENCES parent ON UPDATE CASCADE ON DELETE CASCADE, payload jsonb, data bytea,"
                    + " tags text[], score float8, PRIMARY KEY (a, b))");
            ds.partnership().attach("parent", mode);
            ds.partnership().attach("child", mode);
            c.setAutoCommit(false);
            st.execute("INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 50) g");
            st.execute("INSERT INTO child SELECT g, 'k' || g, g, jsonb_build_object('g', g, 'nested', jsonb_build_array(g, 'x')),"
                    + " decode(md5(g::text), 'hex'), ARRAY['a', 'b' || g], g / 3.0 FROM generate_series(1, 50) g");
            c.commit();
            st.execute("UPDATE parent SET name = name || '!' WHERE id % 2 = 0");
            st.execute("UPDATE child SET score = 'NaN' WHERE a = 1");
            st.execute("UPDATE child SET score = 'Infinity', payload = 'null' WHERE a = 2");
            st.execute("UPDATE parent SET id = id + 1000 WHERE id > 45");
            st.execute("UPDATE child SET a = 50 - a WHERE a <= 10");
            // Single rows take the mirror's key lookup rather than the set-based join.
            st.execute("UPDATE parent SET id = 900 WHERE id = 1");
            st.execute("UPDATE child SET b = 'rekeyed' WHERE a = 40 AND b = 'k40'");
            st.execute("DELETE FROM child WHERE a = 41 AND b = 'k41'");
            st.execute("DELETE FROM child WHERE a BETWEEN 20 AND 25");
            st.execute("DELETE FROM parent WHERE id BETWEEN 30 AND 32");
            st.execute("INSERT INTO parent VALUES (7, 'upserted') ON CONFLICT (id) DO UPDATE SET name = excluded.name");
            st.execute("INSERT INTO parent VALUES (500, 'new') ON CONFLICT (id) DO UPDATE SET name = excluded.name");
            c.commit();
            assertIdentical(pair);
            st.execute("TRUNCATE child");
            st.execute("INSERT INTO child (a, b) VALUES (1, 'after truncate')");
            c.commit();
            assertIdentical(pair);
            st.execute("TRUNCATE parent CASCADE");
            c.commit();
            assertIdentical(pair);
            assertThat(ds.partnership().verify().identical()).isTrue();
        }
        try (Connection m = pair.mirror()) {
            assertThat(value(m, "SELECT count(*) FROM child")).isEqualTo(0L);
            assertThat(value(m, "SELECT capture_mode FROM lockstep.attached WHERE table_name = 'public.child'"))
                    .isEqualTo(mode.name().toLowerCase(java.util.Locale.ROOT));
        }
    }

    @Test
    void rowsWrittenUnderLossyOutputSettingsReachTheMirrorExactly() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("outputsettings");
        try (LockstepDataSource ds = pair.start(); Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE measured (id int PRIMARY KEY, f float8, r real, i interval, b bytea)");
            // Session settings under which row text would be rounded or styled otherwise: capture
            // must pin its own while it writes the row images.
            st.execute("SET extra_float_digits = 0");
            st.execute("SET IntervalStyle = 'sql_standard'");
            st.execute("SET bytea_output = 'escape'");
            st.execute("INSERT INTO measured VALUES (1, 0.1::float8 + 0.2, 1 / 3.0::real,"
                    + " '1 year -2 months 3 days -04:05:06.789', '\\x00ff105c'::bytea)");
            st.execute("INSERT INTO measured SELECT g, 1.0::float8 / g / 7, 2.0::real / g, g * interval '-1 day 00:00:01.5',"
                    + " decode(md5(g::text), 'hex') FROM generate_series(2, 20) g");
            st.execute("UPDATE measured SET f = f * 3, r = r / 7 WHERE id IN (1, 5)");
        }
        try (Connection p = pair.principal(); Connection m = pair.mirror()) {
            String exact = "SELECT id, f::text, r::text, i::text, encode(b, 'hex') FROM measured ORDER BY id";
            assertThat(rows(p, "SELECT f::text FROM measured WHERE id = 1")).containsExactly(List.of("0.9000000000000001"));
            assertThat(rows(m, exact)).isEqualTo(rows(p, exact));
        }
    }

    @Test
    void identityColumnsAndColumnsNamedLikeInternalAliases() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("identity");
        try (LockstepDataSource ds = pair.start(); Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE parent (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, n int, x text, o text)");
            st.execute("CREATE TABLE child (a int PRIMARY KEY, b bigint GENERATED BY DEFAULT AS IDENTITY)");
            st.execute("INSERT INTO parent (n, x, o) SELECT g, '(' || g || ')', 'o' FROM generate_series(1, 10) g");
            st.execute("UPDATE parent SET n = n + 1, x = 'x' WHERE id <= 5");
            st.execute("DELETE FROM parent WHERE id = 10");
            st.execute("INSERT INTO child (a) SELECT g FROM generate_series(1, 7) g");
            st.execute("UPDATE child SET b = b + 100 WHERE a = 1");
            assertIdentical(pair);
            VerifyReport report = ds.partnership().verify();
            assertThat(report.sequences()).extracting(VerifyReport.SequencePosition::sequence)
                    .contains("public.parent_id_seq", "public.child_b_seq");
            assertThat(report.identical()).as(report.toString()).isTrue();
        }
    }

    /**
     * A change set past 8 kB moves to the capture table in chunks; a savepoint rolled back after
     * a chunk moved takes its rows and its part of the change set with it.
     */
    @ParameterizedTest
    @EnumSource(CaptureMode.class)
    void largeTransactionsAndRolledBackSavepointsAreMirroredExactly(CaptureMode mode) throws Exception {
        TwoNodes.Pair pair = nodes.newPair("large");
        try (LockstepDataSource ds = pair.start(); Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE parent (id int PRIMARY KEY, name text)");
            st.execute("CREATE TABLE child (a int PRIMARY KEY, b text)");
            ds.partnership().attach("parent", mode);
            ds.partnership().attach("child", mode);
            c.setAutoCommit(false);
            st.execute("INSERT INTO parent SELECT g, repeat('p', 40) || g FROM generate_series(1, 3000) g");
            st.execute("SAVEPOINT s");
            st.execute("UPDATE parent SET name = 'rolled back' WHERE id <= 1500");
            st.execute("INSERT INTO child SELECT g, 'rolled back' FROM generate_series(1, 1500) g");
            st.execute("ROLLBACK TO SAVEPOINT s");
            // Alternating tables, one row at a time: every row opens a new entry.
            st.execute("DO $$ BEGIN FOR i IN 1..300 LOOP UPDATE parent SET name = 'u' || i WHERE id = i;"
                    + " INSERT INTO child VALUES (i, repeat('c', 30)); END LOOP; END $$");
            st.execute("DELETE FROM parent WHERE id > 2900");
            c.commit();
        }
        assertIdentical(pair);
        try (Connection m = pair.mirror(); Connection p = pair.principal()) {
            assertThat(value(m, "SELECT count(*) FROM child")).isEqualTo(300L);
            assertThat(value(m, "SELECT count(*) FROM parent WHERE name = 'rolled back'")).isEqualTo(0L);
            assertThat(value(m, "SELECT count(*) FROM parent")).isEqualTo(2900L);
            assertThat(value(p, "SELECT count(*) FROM lockstep.capture")).isEqualTo(0L);
            assertThat(value(p, "SELECT octet_length(changes::text) FROM lockstep.journal ORDER BY seq DESC LIMIT 1"))
                    .asInstanceOf(org.assertj.core.api.InstanceOfAssertFactories.INTEGER).isGreaterThan(8192 * 3);
        }
    }

    @Test
    void writesOfDeferredTriggersAreMirrored() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("deferred");
        try (LockstepDataSource ds = pair.start(); Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE parent (id int PRIMARY KEY, name text)");
            st.execute("CREATE TABLE child (a int PRIMARY KEY, b text)");
            st.execute("INSERT INTO child VALUES (0, '0')");
            st.execute("CREATE FUNCTION count_parents() RETURNS trigger LANGUAGE plpgsql AS $$"
                    + " BEGIN UPDATE child SET b = (SELECT count(*) FROM parent)::text WHERE a = 0; RETURN NULL; END $$");
            st.execute("CREATE CONSTRAINT TRIGGER count_parents AFTER INSERT ON parent DEFERRABLE INITIALLY DEFERRED"
                    + " FOR EACH ROW EXECUTE FUNCTION count_parents()");
            c.setAutoCommit(false);
            st.execute("INSERT INTO parent VALUES (1, 'a'), (2, 'b')");
            c.commit();
        }
        assertIdentical(pair);
        try (Connection m = pair.mirror()) {
            assertThat(value(m, "SELECT b FROM child WHERE a = 0")).isEqualTo("2");
            assertThat(value(m, "SELECT count(*) FROM lockstep.capture")).isEqualTo(0L);
        }
        try (Connection p = pair.principal()) {
            assertThat(value(p, "SELECT count(*) FROM lockstep.capture")).isEqualTo(0L);
        }
    }

    /**
     * The transaction's only mirrored write is made at commit by a deferred trigger on a table
     * that is not mirrored (an unlogged queue): collect runs the trigger and mirrors the write,
     * instead of refusing the commit as one that bypassed the protocol.
     */
    @Test
    void aMirroredWriteMadeOnlyByADeferredTriggerAtCommitIsMirrored() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("deferredfirst");
        try (LockstepDataSource ds = pair.start(); Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE audit (id int PRIMARY KEY, note text)");
            st.execute("CREATE UNLOGGED TABLE queue (id int PRIMARY KEY)");
            st.execute("CREATE FUNCTION log_queue() RETURNS trigger LANGUAGE plpgsql AS $$"
                    + " BEGIN INSERT INTO audit VALUES (NEW.id, 'queued ' || NEW.id); RETURN NULL; END $$");
            st.execute("CREATE CONSTRAINT TRIGGER log_queue AFTER INSERT ON queue DEFERRABLE INITIALLY DEFERRED"
                    + " FOR EACH ROW EXECUTE FUNCTION log_queue()");
            c.setAutoCommit(false);
            st.execute("INSERT INTO queue VALUES (1), (2)");
            c.commit();
        }
        try (Connection p = pair.principal(); Connection m = pair.mirror()) {
            assertThat(rows(m, "SELECT id, note FROM audit ORDER BY id")).hasSize(2)
                    .isEqualTo(rows(p, "SELECT id, note FROM audit ORDER BY id"));
            assertThat(value(p, "SELECT count(*) FROM lockstep.capture_guard")).isEqualTo(0L);
        }
    }

    private static void assertIdentical(TwoNodes.Pair pair) throws Exception {
        try (Connection p = pair.principal(); Connection m = pair.mirror()) {
            for (String table : new String[] {"parent", "child"}) {
                // Text comparison keeps NaN, Infinity and bytea exact.
                String sql = "SELECT t::text FROM " + table + " t ORDER BY 1";
                assertThat(rows(m, sql)).as(table).isEqualTo(rows(p, sql));
            }
        }
    }

    /**
     * A table only the mirror holds references a mirrored table: the mirror cannot empty the
     * mirrored table without emptying that one too (CASCADE would, silently), so the TRUNCATE is
     * refused and nothing changes on either node.
     */
    @Test
    void aTruncateThatWouldEmptyATableOnlyTheMirrorHoldsIsRefusedAndNothingChanges() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("truncref");
        try (LockstepDataSource ds = pair.start(); Connection c = ds.getConnection(); Statement st = c.createStatement();
             Connection p = pair.principal(); Connection m = pair.mirror()) {
            st.execute("CREATE TABLE parent (id int PRIMARY KEY)");
            st.execute("INSERT INTO parent SELECT generate_series(1, 3)");
            try (Statement ms = m.createStatement()) {
                ms.execute("SET lockstep.internal = on");
                ms.execute("CREATE TABLE mirror_notes (id int PRIMARY KEY, parent_id int REFERENCES parent (id))");
                ms.execute("INSERT INTO mirror_notes VALUES (1, 1)");
            }
            assertThatThrownBy(() -> st.execute("TRUNCATE parent"))
                    .isInstanceOfSatisfying(SQLException.class, e -> assertThat(e.getSQLState()).isEqualTo("0A000"))
                    .hasMessageContaining("mirror node node-b refused TRUNCATE of public.parent")
                    .hasMessageContaining("mirror_notes");
            assertThat(value(p, "SELECT count(*) FROM parent")).isEqualTo(3L);
            assertThat(value(m, "SELECT count(*) FROM parent")).isEqualTo(3L);
            assertThat(value(m, "SELECT count(*) FROM mirror_notes")).isEqualTo(1L);
            assertThat(TwoNodes.lockstepPrepared(p)).isEmpty();
        }
    }

    /**
     * User TRUNCATE triggers that write a mirrored table (an audit log) put their rows between the
     * TRUNCATE entries of one statement; the mirror still empties the tables that reference each
     * other together, and both nodes end identical.
     */
    @Test
    void aTruncateOfReferencingTablesWithAnAuditTriggerBetweenThemIsMirrored() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("truncaudit");
        try (LockstepDataSource ds = pair.start(); Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE parent (id int PRIMARY KEY)");
            st.execute("CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id))");
            st.execute("CREATE TABLE audit_log (id bigserial PRIMARY KEY, tbl text, op text)");
            st.execute("CREATE FUNCTION audit_truncate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                    + " INSERT INTO audit_log (tbl, op) VALUES (TG_TABLE_NAME, TG_OP); RETURN NULL; END $$");
            // Named to fire before Lockstep's own TRUNCATE trigger on each table.
            st.execute("CREATE TRIGGER audit_t AFTER TRUNCATE ON parent FOR EACH STATEMENT EXECUTE FUNCTION audit_truncate()");
            st.execute("CREATE TRIGGER audit_t AFTER TRUNCATE ON child FOR EACH STATEMENT EXECUTE FUNCTION audit_truncate()");
            st.execute("INSERT INTO parent SELECT generate_series(1, 3)");
            st.execute("INSERT INTO child SELECT g, g FROM generate_series(1, 3) g");
            st.execute("TRUNCATE parent, child");
            try (Connection p = pair.principal(); Connection m = pair.mirror()) {
                assertThat(value(m, "SELECT count(*) FROM parent")).isEqualTo(0L);
                assertThat(value(m, "SELECT count(*) FROM child")).isEqualTo(0L);
                String audit = "SELECT id, tbl, op FROM audit_log ORDER BY id";
                assertThat(rows(m, audit)).hasSize(2).isEqualTo(rows(p, audit));
            }
            assertThat(ds.partnership().verify().identical()).isTrue();
        }
    }
}
