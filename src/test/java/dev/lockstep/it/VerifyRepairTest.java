package dev.lockstep.it;

import dev.lockstep.LockstepDataSource;
import dev.lockstep.RepairReport;
import dev.lockstep.VerifyOptions;
import dev.lockstep.VerifyReport;
import dev.lockstep.core.RowDifference;
import org.junit.jupiter.api.Test;

import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;

import static dev.lockstep.core.RowDifference.Kind.CHANGED;
import static dev.lockstep.core.RowDifference.Kind.EXTRA_ON_MIRROR;
import static dev.lockstep.core.RowDifference.Kind.MISSING_ON_MIRROR;
import static dev.lockstep.it.TwoNodes.rows;
import static dev.lockstep.it.TwoNodes.value;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Verify finds a row changed behind Lockstep's back on the mirror, a missing row, an extra row, a
 * sequence behind and a schema difference, names the keys, and repairs on request.
 */
class VerifyRepairTest extends OnTwoNodes {

    private static final String ITEMS = "public.items";
    private static final String PAIRS = "public.pairs";
    private static final String EVENTS = "public.events";

    /** Three tables written through Lockstep: a plain key, a composite key, a serial key. */
    private static LockstepDataSource startWithTables(TwoNodes.Pair pair) throws SQLException {
        LockstepDataSource ds = pair.start();
        try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE items (id int PRIMARY KEY, name text, qty int)");
            st.execute("CREATE TABLE pairs (a int, b text, v int, PRIMARY KEY (a, b))");
            st.execute("CREATE TABLE events (id bigserial PRIMARY KEY, note text)");
            st.execute("INSERT INTO items SELECT g, 'item ' || g, g * 10 FROM generate_series(1, 10) g");
            st.execute("INSERT INTO pairs SELECT g, 'k' || g, g FROM generate_series(1, 5) g");
            st.execute("INSERT INTO events (note) SELECT 'e' || g FROM generate_series(1, 5) g");
        }
        return ds;
    }

    /** Runs statements straight on the mirror with capture and user triggers off, as if behind Lockstep's back. */
    private static void onMirrorBehindLockstep(TwoNodes.Pair pair, String... statements) throws SQLException {
        try (Connection m = pair.mirror(); Statement st = m.createStatement()) {
            st.execute("SET session_replication_role = replica");
            st.execute("SET lockstep.applier = on");
            for (String sql : statements) {
                st.execute(sql);
            }
        }
    }

    private static void assertSameRows(TwoNodes.Pair pair, String query) throws SQLException {
        try (Connection p = pair.principal(); Connection m = pair.mirror()) {
            assertThat(rows(m, query)).as(query).isEqualTo(rows(p, query));
        }
    }

    @Test
    void identicalNodesReportNoKeysNoSchemaDifferenceAndNothingToRepair() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("verify_same");
        try (LockstepDataSource ds = startWithTables(pair)) {
            VerifyReport report = ds.partnership().verify();
            assertThat(report.identical()).as("%s", report).isTrue();
            assertThat(report.tables()).extracting(VerifyReport.TableChecksum::table).containsExactly(EVENTS, ITEMS, PAIRS);
            assertThat(report.tables()).allSatisfy(t -> {
                assertThat(t.differences()).isEmpty();
                assertThat(t.differenceCount()).isZero();
                assertThat(t.differencesCapped()).isFalse();
            });
            assertThat(report.table(ITEMS).orElseThrow().principalRows()).isEqualTo(10);
            assertThat(report.schema()).isEmpty();
            assertThat(report.sequences()).extracting(VerifyReport.SequencePosition::sequence).containsExactly("public.events_id_seq");

            RepairReport repair = ds.partnership().repair();
            assertThat(repair.tables()).isEmpty();
            assertThat(repair.sequences()).isEmpty();
            assertThat(repair.schema()).isEmpty();
        }
    }

    @Test
    void verifyNamesChangedMissingAndExtraKeysAndABehindSequenceThenRepairMakesTheMirrorThePrincipals() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("verify_rows");
        try (LockstepDataSource ds = startWithTables(pair)) {
            onMirrorBehindLockstep(pair,
                    "UPDATE items SET qty = -1 WHERE id = 2",
                    "DELETE FROM items WHERE id = 3",
                    "INSERT INTO items VALUES (99, 'extra', 0)",
                    "UPDATE pairs SET v = 100 WHERE a = 4 AND b = 'k4'",
                    "SELECT setval('events_id_seq', 2)");

            VerifyReport report = ds.partnership().verify();
            assertThat(report.identical()).isFalse();
            VerifyReport.TableChecksum items = report.table(ITEMS).orElseThrow();
            assertThat(items.identical()).isFalse();
            assertThat(items.differences()).containsExactlyInAnyOrder(
                    new RowDifference("{\"id\": 2}", CHANGED),
                    new RowDifference("{\"id\": 3}", MISSING_ON_MIRROR),
                    new RowDifference("{\"id\": 99}", EXTRA_ON_MIRROR));
            assertThat(items.differenceCount()).isEqualTo(3);
            assertThat(items.differencesCapped()).isFalse();
            assertThat(items.keys(CHANGED)).containsExactly("{\"id\": 2}");
            assertThat(report.table(PAIRS).orElseThrow().differences())
                    .containsExactly(new RowDifference("{\"a\": 4, \"b\": \"k4\"}", CHANGED));
            assertThat(report.table(EVENTS).orElseThrow().identical()).isTrue();
            assertThat(report.sequences()).containsExactly(new VerifyReport.SequencePosition("public.events_id_seq", 5L, 2L));
            assertThat(report.schema()).isEmpty();

            RepairReport repair = ds.partnership().repair();
            assertThat(repair.tables()).containsExactlyInAnyOrder(
                    new RepairReport.TableRepair(ITEMS, 1, 1, 1, null),
                    new RepairReport.TableRepair(PAIRS, 1, 0, 0, null));
            assertThat(repair.sequences()).containsExactly(new RepairReport.SequenceRepair("public.events_id_seq", 2L, 5L));
            assertThat(repair.rowsRepaired()).isEqualTo(4);

            VerifyReport after = ds.partnership().verify();
            assertThat(after.identical()).as("%s", after).isTrue();
            assertSameRows(pair, "SELECT * FROM items ORDER BY id");
            assertSameRows(pair, "SELECT * FROM pairs ORDER BY a, b");
            assertSameRows(pair, "SELECT last_value FROM events_id_seq");

            // Lockstep goes on applying to the repaired rows (its apply refuses a mirror that diverged).
            try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
                st.execute("UPDATE items SET qty = qty + 1 WHERE id IN (2, 3)");
                st.execute("INSERT INTO items VALUES (99, 'now through lockstep', 1)");
                st.execute("UPDATE pairs SET v = v + 1");
                st.execute("INSERT INTO events (note) VALUES ('after repair')");
            }
            assertThat(ds.partnership().verify().identical()).isTrue();
            assertSameRows(pair, "SELECT * FROM items ORDER BY id");
            assertSameRows(pair, "SELECT * FROM events ORDER BY id");
        }
    }

    @Test
    void theKeysNamedPerTableAreCappedAndSaySoWhileRepairFixesEveryOneInBatches() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("verify_many");
        try (LockstepDataSource ds = pair.start(); Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE big (id int PRIMARY KEY, payload text, at timestamptz, score float8, tags text[])");
            st.execute("INSERT INTO big SELECT g, repeat('x', g % 50), '2024-01-01'::timestamptz + g * interval '1 minute',"
                    + " g / 7.0, ARRAY['t' || g] FROM generate_series(1, 3000) g");
            onMirrorBehindLockstep(pair,
                    "DELETE FROM big WHERE id % 3 = 0",
                    "UPDATE big SET score = score + 1 WHERE id % 3 = 1 AND id <= 1500",
                    "INSERT INTO big SELECT g, 'extra', now(), 0, '{}' FROM generate_series(5001, 5300) g");

            VerifyReport capped = ds.partnership().verify(VerifyOptions.defaults().withMaxKeysPerTable(5));
            VerifyReport.TableChecksum big = capped.table("public.big").orElseThrow();
            assertThat(big.differences()).hasSize(5);
            assertThat(big.differenceCount()).isEqualTo(1000 + 500 + 300);
            assertThat(big.differencesCapped()).isTrue();
            VerifyReport none = ds.partnership().verify(VerifyOptions.defaults().withMaxKeysPerTable(0));
            assertThat(none.table("public.big").orElseThrow().differences()).isEmpty();
            assertThat(none.table("public.big").orElseThrow().differenceCount()).isEqualTo(1800);

            RepairReport repair = ds.partnership().repair();
            assertThat(repair.tables()).containsExactly(new RepairReport.TableRepair("public.big", 500, 1000, 300, null));
            VerifyReport after = ds.partnership().verify();
            assertThat(after.identical()).as("%s", after).isTrue();
            assertSameRows(pair, "SELECT id, payload, at, score, tags::text FROM big ORDER BY id");
        }
    }

    @Test
    void textAndTimestampKeysBeyondAsciiAreMatchedInTheSameOrderOnBothNodesAndRepaired() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("verify_keys");
        try (LockstepDataSource ds = pair.start(); Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE names (k text, at timestamptz, v int, PRIMARY KEY (k, at))");
            st.execute("INSERT INTO names SELECT k, '2024-05-01 12:00:00.123456+00', 1 FROM unnest(ARRAY['a', 'Z', 'é', '\uFF21',"
                    + " U&'\\+01F600', 'a\"b', 'ab', '']) k");
            onMirrorBehindLockstep(pair,
                    "UPDATE names SET v = 2 WHERE k = U&'\\+01F600'",
                    "DELETE FROM names WHERE k = '\uFF21'",
                    "INSERT INTO names VALUES ('zz', '2024-05-01 12:00:00+00', 3)");
            VerifyReport report = ds.partnership().verify();
            VerifyReport.TableChecksum names = report.table("public.names").orElseThrow();
            assertThat(names.differences()).extracting(RowDifference::kind)
                    .containsExactlyInAnyOrder(CHANGED, MISSING_ON_MIRROR, EXTRA_ON_MIRROR);
            assertThat(names.keys(CHANGED)).singleElement().asString().contains("\uD83D\uDE00");
            assertThat(names.keys(MISSING_ON_MIRROR)).singleElement().asString().contains("\uFF21");
            assertThat(names.keys(EXTRA_ON_MIRROR)).singleElement().asString().contains("zz");
            assertThat(ds.partnership().repair().rowsRepaired()).isEqualTo(3);
            assertThat(ds.partnership().verify().identical()).isTrue();
            assertSameRows(pair, "SELECT k, at, v FROM names ORDER BY k COLLATE \"C\", at");
        }
    }

    @Test
    void aSchemaDifferenceIsNamedByObjectAndIsReportedNotRepaired() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("verify_schema");
        try (LockstepDataSource ds = startWithTables(pair)) {
            onMirrorBehindLockstep(pair,
                    "ALTER TABLE items ADD COLUMN note text",
                    "ALTER TABLE pairs ALTER COLUMN v TYPE bigint",
                    "ALTER TABLE events DROP CONSTRAINT events_pkey",
                    "UPDATE items SET name = 'tampered' WHERE id = 5",
                    "UPDATE events SET note = 'tampered' WHERE id = 4");

            VerifyReport report = ds.partnership().verify();
            assertThat(report.identical()).isFalse();
            assertThat(report.schema(ITEMS)).containsExactlyInAnyOrder(
                    new VerifyReport.SchemaDifference(ITEMS, "column note", null, "text"),
                    new VerifyReport.SchemaDifference(ITEMS, "column order", "id, name, qty", "id, name, qty, note"));
            assertThat(report.schema(PAIRS)).containsExactly(new VerifyReport.SchemaDifference(PAIRS, "column v", "integer", "bigint"));
            // Rows are compared over the columns both nodes have: only the tampered row differs.
            assertThat(report.table(ITEMS).orElseThrow().differences()).containsExactly(new RowDifference("{\"id\": 5}", CHANGED));
            assertThat(report.table(PAIRS).orElseThrow().identical()).isTrue();
            // Without its primary key on the mirror, rows are still matched by the principal's key.
            assertThat(report.schema(EVENTS)).extracting(VerifyReport.SchemaDifference::object)
                    .containsExactlyInAnyOrder("constraint events_pkey", "index events_pkey");
            assertThat(report.schema(EVENTS)).filteredOn(d -> d.object().equals("constraint events_pkey"))
                    .containsExactly(new VerifyReport.SchemaDifference(EVENTS, "constraint events_pkey", "PRIMARY KEY (id)", null));
            assertThat(report.table(EVENTS).orElseThrow().differences()).containsExactly(new RowDifference("{\"id\": 4}", CHANGED));

            RepairReport repair = ds.partnership().repair();
            assertThat(repair.schema()).containsExactlyInAnyOrderElementsOf(report.schema());
            assertThat(repair.tables()).extracting(RepairReport.TableRepair::table).containsExactlyInAnyOrder(EVENTS, ITEMS);
            assertThat(repair.tables()).allSatisfy(t -> {
                assertThat(t.repaired()).isFalse();
                assertThat(t.skipped()).contains("definition differs");
            });
            try (Connection m = pair.mirror()) {
                assertThat(value(m, "SELECT name FROM items WHERE id = 5")).isEqualTo("tampered");
                assertThat(value(m, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'note'"))
                        .isEqualTo(1L);
            }
            assertThat(ds.partnership().verify().schema()).containsExactlyInAnyOrderElementsOf(report.schema());
        }
    }

    @Test
    void aTableMissingOnTheMirrorIsNamedAndSkipped() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("verify_gone");
        try (LockstepDataSource ds = startWithTables(pair)) {
            onMirrorBehindLockstep(pair, "DROP TABLE pairs");
            VerifyReport report = ds.partnership().verify();
            assertThat(report.identical()).isFalse();
            assertThat(report.schema()).containsExactly(new VerifyReport.SchemaDifference(PAIRS, "table", "table", null));
            assertThat(report.table(PAIRS)).isEmpty();
            RepairReport repair = ds.partnership().repair();
            assertThat(repair.tables()).containsExactly(new RepairReport.TableRepair(PAIRS, 0, 0, 0, "the table is missing on one node"));
        }
    }

    @Test
    void aNodeDownFailsVerifyAndRepairWithItsName() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("verify_down");
        try (LockstepDataSource ds = startWithTables(pair)) {
            nodes.b().proxy().partition();
            try {
                assertThatThrownBy(() -> ds.partnership().verify()).isInstanceOf(SQLException.class)
                        .hasMessageContaining("node node-b")
                        .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("08001"));
                assertThatThrownBy(() -> ds.partnership().repair()).isInstanceOf(SQLException.class)
                        .hasMessageContaining("node node-b")
                        .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("08001"));
            } finally {
                nodes.b().proxy().heal();
            }
        }
    }

    @Test
    void repairWaitsForAWriterOfTheTableNoLongerThanItsLockTimeoutAndChangesNothing() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("verify_lock");
        try (LockstepDataSource ds = startWithTables(pair); Connection writer = ds.getConnection(); Statement st = writer.createStatement()) {
            onMirrorBehindLockstep(pair, "DELETE FROM items WHERE id = 1");
            writer.setAutoCommit(false);
            st.execute("UPDATE items SET qty = qty + 1 WHERE id = 10");
            assertThatThrownBy(() -> ds.partnership().repair(VerifyOptions.defaults().withLockTimeout(Duration.ofMillis(200))))
                    .isInstanceOf(SQLException.class)
                    .hasMessageContaining("public.items").hasMessageContaining("principal node node-a")
                    .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("55P03"));
            writer.rollback();
            try (Connection m = pair.mirror()) {
                assertThat(value(m, "SELECT count(*) FROM items WHERE id = 1")).isEqualTo(0L);
            }
            assertThat(ds.partnership().repair().tables()).containsExactly(new RepairReport.TableRepair(ITEMS, 0, 1, 0, null));
            assertThat(ds.partnership().verify().identical()).isTrue();
        }
    }

    @Test
    void repairRefusesAMirrorThePrincipalRecordsAsBehind() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("verify_behind");
        try (LockstepDataSource ds = startWithTables(pair)) {
            onMirrorBehindLockstep(pair, "DELETE FROM items WHERE id = 1");
            try (Connection p = pair.principal(); Statement st = p.createStatement()) {
                st.execute("UPDATE lockstep.node_state SET mirroring_state = 'DISCONNECTED'");
            }
            assertThatThrownBy(() -> ds.partnership().repair()).isInstanceOf(SQLException.class)
                    .hasMessageContaining("node-a").hasMessageContaining("public.items").hasMessageContaining("SYNCHRONIZED")
                    .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("55000"));
            try (Connection m = pair.mirror()) {
                assertThat(value(m, "SELECT count(*) FROM items WHERE id = 1")).isEqualTo(0L);
            }
        }
    }

    @Test
    void badOptionsNameTheSetting() {
        assertThatThrownBy(() -> VerifyOptions.defaults().withMaxKeysPerTable(-1)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("maxKeysPerTable").hasMessageContaining("-1");
        assertThatThrownBy(() -> VerifyOptions.defaults().withLockTimeout(Duration.ZERO)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("lockTimeout");
        assertThat(List.of(VerifyOptions.defaults().maxKeysPerTable())).containsExactly(1000);
    }
}
