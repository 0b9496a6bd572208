package dev.lockstep.it;

import dev.lockstep.LockstepDataSource;
import dev.lockstep.NodeConfig;
import dev.lockstep.testing.PgNode;
import org.junit.jupiter.api.Test;

import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.List;
import java.util.Map;

import static dev.lockstep.it.TwoNodes.lockstepPrepared;
import static dev.lockstep.it.TwoNodes.rows;
import static dev.lockstep.it.TwoNodes.value;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/** Bad input gets a clear SQLException with a real SQLSTATE, and nothing is half-applied on either node. */
class BadInputTest extends OnTwoNodes {

    private static String sqlState(Throwable e) {
        return ((SQLException) e).getSQLState();
    }

    /**
     * A data source over a new pair, with table t holding two rows. The steps are retried as an
     * application would: they are setup, not what the tests look at, and the pair's 1 s call
     * deadline can cut a DDL apply short on a busy machine.
     */
    private static LockstepDataSource startWithTable(TwoNodes.Pair pair) throws SQLException {
        LockstepDataSource ds = pair.start();
        assertThat(TwoNodes.acknowledgedWithRetries(ds, "CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY, v int)")).isTrue();
        assertThat(TwoNodes.acknowledgedWithRetries(ds, "INSERT INTO t VALUES (1, 1), (2, 2) ON CONFLICT DO NOTHING")).isTrue();
        return ds;
    }

    private static void assertBothHold(TwoNodes.Pair pair, long rows, long sum) throws SQLException {
        try (Connection p = pair.principal(); Connection m = pair.mirror()) {
            for (Connection c : new Connection[] {p, m}) {
                assertThat(value(c, "SELECT count(*) FROM t")).isEqualTo(rows);
                assertThat(value(c, "SELECT coalesce(sum(v), 0) FROM t")).isEqualTo(sum);
                assertThat(lockstepPrepared(c)).isEmpty();
            }
        }
    }

    @Test
    void aNodeDownAtStartIsNamed() {
        TwoNodes.Pair pair = nodes.newPair("down");
        nodes.b().proxy().partition();
        try {
            assertThatThrownBy(pair::start).isInstanceOf(SQLException.class)
                    .hasMessageContaining("cannot connect to node node-b")
                    .satisfies(e -> assertThat(sqlState(e)).isEqualTo("08001"));
        } finally {
            nodes.b().proxy().heal();
        }
    }

    @Test
    void aTableWithoutPrimaryKeyIsRefusedAtAttachWithNothingInstalled() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("nopk");
        try (LockstepDataSource ds = pair.start()) {
            for (Connection direct : new Connection[] {pair.principal(), pair.mirror()}) {
                try (direct; Statement st = direct.createStatement()) {
                    st.execute("SET lockstep.internal = on");
                    st.execute("CREATE TABLE loose (v int)");
                }
            }
            assertThatThrownBy(() -> ds.partnership().attach("loose")).isInstanceOf(SQLException.class)
                    .hasMessageContaining("loose has no primary key")
                    .satisfies(e -> assertThat(sqlState(e)).isEqualTo("42P16"));
            assertThat(ds.partnership().attachedTables()).isEmpty();
            try (Connection p = pair.principal(); Connection m = pair.mirror()) {
                for (Connection c : new Connection[] {p, m}) {
                    assertThat(value(c, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'loose'::regclass")).isEqualTo(0L);
                }
            }
        }
    }

    @Test
    void aTableCreatedWithoutPrimaryKeyThroughTheDataSourceFailsTheTransaction() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("nopk");
        try (LockstepDataSource ds = pair.start(); Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            assertThatThrownBy(() -> st.execute("CREATE TABLE loose (v int)")).isInstanceOf(SQLException.class)
                    .hasMessageContaining("public.loose was created without a primary key")
                    .satisfies(e -> assertThat(sqlState(e)).isEqualTo("42P16"));
            // Adding the key in the same transaction is fine.
            c.setAutoCommit(false);
            st.execute("CREATE TABLE keyed_later (v int)");
            st.execute("ALTER TABLE keyed_later ADD PRIMARY KEY (v)");
            st.execute("INSERT INTO keyed_later VALUES (7)");
            c.commit();
            assertThat(ds.partnership().attachedTables()).containsExactly("public.keyed_later");
        }
        try (Connection p = pair.principal(); Connection m = pair.mirror()) {
            assertThat(value(p, "SELECT to_regclass('loose') IS NULL")).isEqualTo(true);
            assertThat(value(m, "SELECT to_regclass('loose') IS NULL")).isEqualTo(true);
            assertThat(value(m, "SELECT v FROM keyed_later")).isEqualTo(7);
        }
    }

    @Test
    void aMirroredWriteThatTouchesATemporaryTableIsRefusedAndNothingIsApplied() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("temp");
        try (LockstepDataSource ds = startWithTable(pair); Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            c.setAutoCommit(false);
            st.execute("CREATE TEMP TABLE scratch (id int)");
            st.execute("INSERT INTO scratch VALUES (1)");
            st.executeUpdate("UPDATE t SET v = v + 10");
            assertThatThrownBy(c::commit).isInstanceOf(SQLException.class)
                    .hasMessageContaining("was rolled back on principal node node-a")
                    .hasMessageContaining("temporary")
                    .satisfies(e -> assertThat(sqlState(e)).isEqualTo("0A000"));
            // A transaction that only reads mirrored tables may use temporary tables freely.
            st.execute("CREATE TEMP TABLE report AS SELECT * FROM t");
            assertThat(value(c, "SELECT count(*) FROM report")).isEqualTo(2L);
            c.commit();
        }
        assertBothHold(pair, 2, 3);
    }

    @Test
    void anUnreachableMirrorFailsTheCommitAndLeavesBothNodesUnchanged() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("mirrordown");
        try (LockstepDataSource ds = startWithTable(pair); Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            nodes.b().proxy().partition();
            SQLException failure;
            try {
                failure = org.junit.jupiter.api.Assertions.assertThrows(SQLException.class, () -> st.executeUpdate("UPDATE t SET v = v + 10"));
            } finally {
                nodes.b().proxy().heal();
            }
            // Refused at checkout (08001, nothing prepared anywhere), or cut during apply (40003:
            // left prepared on the principal, and in-doubt resolution may still commit it, with
            // the principal alone once the mirror is recorded lost, or roll it back).
            assertThat((Throwable) failure).hasMessageContaining("mirror node node-b");
            assertThat(sqlState(failure)).isIn("08001", "40003");
            // Without a witness the principal went on alone; once healed, the mirror catches up.
            st.executeUpdate("UPDATE t SET v = v + 1");
            await().atMost(java.time.Duration.ofSeconds(30)).untilAsserted(() -> {
                boolean settledAsCommitted;
                try (Connection p = pair.principal()) {
                    settledAsCommitted = "40003".equals(sqlState(failure)) && (Long) value(p, "SELECT sum(v) FROM t") == 25L;
                }
                assertBothHold(pair, 2, settledAsCommitted ? 25 : 5);
            });
        }
    }

    @Test
    void aFrozenMirrorFailsTheCommitWithinItsDeadlineAndBothNodesAgreeAfterwards() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("frozen");
        try (LockstepDataSource ds = startWithTable(pair); Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            nodes.b().freeze();
            long started = System.nanoTime();
            try {
                assertThatThrownBy(() -> st.executeUpdate("UPDATE t SET v = v + 10"))
                        .isInstanceOf(SQLException.class)
                        .hasMessageContaining("mirror node node-b");
            } finally {
                nodes.b().thaw();
            }
            // remoteCallTimeout is 1 s; the socket deadline adds a 5 s margin.
            assertThat(java.time.Duration.ofNanos(System.nanoTime() - started)).isLessThan(java.time.Duration.ofSeconds(20));
            await().atMost(java.time.Duration.ofSeconds(30)).pollInterval(java.time.Duration.ofMillis(500))
                    .untilAsserted(() -> {
                        ds.partnership().resolveInDoubt();
                        // 40003: the thawed mirror may still prepare what it had received, and then
                        // resolution commits it on both nodes; either way both nodes agree.
                        try (Connection p = pair.principal(); Connection m = pair.mirror()) {
                            assertThat(value(p, "SELECT sum(v) FROM t")).isIn(3L, 23L);
                            assertThat(value(m, "SELECT sum(v) FROM t")).isEqualTo(value(p, "SELECT sum(v) FROM t"));
                            assertThat(lockstepPrepared(p)).isEmpty();
                            assertThat(lockstepPrepared(m)).isEmpty();
                        }
                    });
        }
    }

    @Test
    void aMirrorThatDivergedRefusesTheChangeByName() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("diverged");
        try (LockstepDataSource ds = startWithTable(pair); Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            try (Connection m = pair.mirror(); Statement ms = m.createStatement()) {
                ms.execute("SET session_replication_role = replica");
                ms.execute("SET lockstep.applier = on");
                ms.execute("DELETE FROM t WHERE id = 2");
            }
            assertThatThrownBy(() -> st.executeUpdate("UPDATE t SET v = v + 10"))
                    .isInstanceOf(SQLException.class)
                    .hasMessageContaining("mirror node node-b diverged").hasMessageContaining("public.t")
                    .satisfies(e -> assertThat(sqlState(e)).isEqualTo("XX001"));
            assertThat(ds.partnership().verify().identical()).isFalse();
        }
        try (Connection p = pair.principal(); Connection m = pair.mirror()) {
            assertThat(value(p, "SELECT sum(v) FROM t")).isEqualTo(3L);
            assertThat(value(m, "SELECT sum(v) FROM t")).isEqualTo(1L);
            assertThat(lockstepPrepared(p)).isEmpty();
        }
    }

    @Test
    void aMirrorThatFailsToApplyFailsTheCommitAndForeignPreparedTransactionsAreLeftAlone() throws Exception {
        try (PgNode small = PgNode.start("node-small", Map.of("max_prepared_transactions", "1"))) {
            String principalDb = nodes.a().createDatabase("fullmirror");
            String mirrorDb = small.createDatabase("fullmirror");
            var config = nodes.newPair("fullmirror").config()
                    .principal(NodeConfig.of("node-a", nodes.a().jdbcUrl(principalDb), "postgres", "postgres"))
                    .mirror(NodeConfig.of("node-small", small.jdbcUrl(mirrorDb), "postgres", "postgres"))
                    .poolSize(1).build();
            try (LockstepDataSource ds = LockstepDataSource.start(config); Connection c = ds.getConnection();
                 Statement st = c.createStatement()) {
                st.execute("CREATE TABLE t (id int PRIMARY KEY)");
                try (Connection m = small.connectDirect(mirrorDb); Statement ms = m.createStatement()) {
                    ms.execute("BEGIN");
                    ms.execute("PREPARE TRANSACTION 'someone-elses-xa'");
                }
                // The mirror commits in one step: its only prepared-transaction slot, taken by
                // someone else, does not stand in the way.
                st.executeUpdate("INSERT INTO t VALUES (1)");
                try (Connection m = small.connectDirect(mirrorDb); Statement ms = m.createStatement()) {
                    m.setAutoCommit(true);
                    ms.execute("SET lockstep.internal = on");
                    ms.execute("ALTER TABLE t ADD CONSTRAINT only_small_ids CHECK (id < 100)");
                }
                assertThatThrownBy(() -> st.executeUpdate("INSERT INTO t VALUES (100)"))
                        .isInstanceOf(SQLException.class)
                        .hasMessageContaining("mirror node node-small failed to apply or commit it")
                        .hasMessageContaining("only_small_ids")
                        .satisfies(e -> assertThat(sqlState(e)).isEqualTo("23514"));
                assertThat(ds.partnership().resolveInDoubt().committed()).isZero();
            }
            try (Connection p = nodes.a().connectDirect(principalDb); Connection m = small.connectDirect(mirrorDb)) {
                assertThat(rows(p, "SELECT id FROM t")).containsExactly(java.util.List.of(1));
                assertThat(rows(m, "SELECT id FROM t")).containsExactly(java.util.List.of(1));
                assertThat(lockstepPrepared(p)).isEmpty();
                assertThat(rows(m, "SELECT gid FROM pg_prepared_xacts")).containsExactly(java.util.List.of("someone-elses-xa"));
                m.createStatement().execute("ROLLBACK PREPARED 'someone-elses-xa'");
            }
        }
    }

    /**
     * The mirror refuses a transaction (a CHECK only it has, slowed so the test can act) and the
     * link to the principal breaks before its prepared copy is rolled back there: the client is
     * told the outcome is unknown (40003), not "rolled back", because in-doubt resolution would
     * commit that copy should the mirror be written off. Once the link is back, resolution rolls
     * it back (prepared on the principal, absent on the mirror) and neither node holds the row.
     */
    @Test
    void aMirrorRefusalWhoseRollbackOnThePrincipalFailsIsAnUnknownOutcome() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("norollback");
        try (LockstepDataSource ds = pair.start(); Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE t (id int PRIMARY KEY)");
            try (Connection m = pair.mirror(); Statement ms = m.createStatement()) {
                ms.execute("SET lockstep.internal = on");
                ms.execute("CREATE FUNCTION slowly_small(id int) RETURNS boolean LANGUAGE plpgsql"
                        + " AS $$ BEGIN PERFORM pg_sleep(1); RETURN id < 100; END $$");
                ms.execute("ALTER TABLE t ADD CONSTRAINT only_small_ids CHECK (slowly_small(id))");
            }
            var attempt = java.util.concurrent.CompletableFuture.supplyAsync(() -> {
                try {
                    st.executeUpdate("INSERT INTO t VALUES (100)");
                    return null;
                } catch (SQLException e) {
                    return e;
                }
            });
            TwoNodes.awaitApplyUnderWay(pair);
            nodes.a().proxy().partition();
            SQLException failure;
            try {
                failure = attempt.get(30, java.util.concurrent.TimeUnit.SECONDS);
            } finally {
                nodes.a().proxy().heal();
            }
            assertThat((Throwable) failure).isNotNull().hasMessageContaining("its rollback on principal node node-a failed too");
            assertThat(sqlState(failure)).isEqualTo("40003");
            await().atMost(java.time.Duration.ofSeconds(30)).untilAsserted(() -> {
                try (Connection p = pair.principal()) {
                    assertThat(lockstepPrepared(p)).isEmpty();
                }
            });
        }
        try (Connection p = pair.principal(); Connection m = pair.mirror()) {
            assertThat(rows(p, "SELECT id FROM t")).isEmpty();
            assertThat(rows(m, "SELECT id FROM t")).isEmpty();
        }
    }

    @Test
    void maxPreparedTransactionsZeroIsRefusedAtStart() throws Exception {
        try (PgNode noTwoPhase = PgNode.start("node-no2pc", Map.of("max_prepared_transactions", "0"))) {
            String db = noTwoPhase.createDatabase("no2pc");
            var config = nodes.newPair("no2pc").config()
                    .mirror(NodeConfig.of("node-no2pc", noTwoPhase.jdbcUrl(db), "postgres", "postgres")).build();
            assertThatThrownBy(() -> LockstepDataSource.start(config)).isInstanceOf(SQLException.class)
                    .hasMessageContaining("node node-no2pc has max_prepared_transactions = 0").hasMessageContaining("poolSize = 8")
                    .satisfies(e -> assertThat(sqlState(e)).isEqualTo("55000"));
            try (Connection c = noTwoPhase.connectDirect(db)) {
                assertThat(value(c, "SELECT to_regnamespace('lockstep') IS NULL")).isEqualTo(true);
            }
        }
    }

    @Test
    void aRoleThatMayNotSetSessionReplicationRoleIsRefusedAtStart() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("norole");
        try (Connection m = pair.mirror(); Statement st = m.createStatement()) {
            st.execute("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'plain_app') THEN"
                    + " CREATE ROLE plain_app LOGIN PASSWORD 'pw'; END IF; END $$");
            st.execute("GRANT ALL ON DATABASE " + pair.dbB() + " TO plain_app");
        }
        var config = pair.config()
                .mirror(NodeConfig.of("node-b", nodes.b().jdbcUrl(pair.dbB()), "plain_app", "pw")).build();
        assertThatThrownBy(() -> LockstepDataSource.start(config)).isInstanceOf(SQLException.class)
                .hasMessageContaining("'plain_app' on node node-b may not set session_replication_role")
                .hasMessageContaining("GRANT SET ON PARAMETER session_replication_role")
                .satisfies(e -> assertThat(sqlState(e)).isEqualTo("42501"));
    }

    @Test
    void disablingCaptureTriggersIsRefused() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("disable");
        try (LockstepDataSource ds = startWithTable(pair); Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            assertThatThrownBy(() -> st.execute("ALTER TABLE t DISABLE TRIGGER USER"))
                    .isInstanceOf(SQLException.class).hasMessageContaining("capture triggers of mirrored table public.t must stay enabled")
                    .satisfies(e -> assertThat(sqlState(e)).isEqualTo("55000"));
            // Without a witness the principal went on alone; once healed, the mirror catches up.
            st.executeUpdate("UPDATE t SET v = v + 1");
            await().atMost(java.time.Duration.ofSeconds(30)).untilAsserted(() -> assertBothHold(pair, 2, 5));
        }
    }

    @Test
    void aTableThatExistedBeforeIsNotAttachedByAnAlterAndMayStayWithoutKey() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("preexisting");
        for (Connection direct : new Connection[] {pair.principal(), pair.mirror()}) {
            try (direct; Statement st = direct.createStatement()) {
                st.execute("CREATE TABLE legacy (id int PRIMARY KEY, v int)");
                st.execute("CREATE TABLE keyless (v int)");
            }
        }
        try (LockstepDataSource ds = pair.start(); Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute("ALTER TABLE legacy ADD COLUMN note text");
            st.execute("ALTER TABLE keyless ADD COLUMN note text");
            assertThat(ds.partnership().attachedTables()).isEmpty();
        }
        try (Connection m = pair.mirror()) {
            assertThat(value(m, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'note'")).isEqualTo(2L);
        }
    }

    @Test
    void aMissingSchemaIsNamedWhenInstallationIsOff() {
        TwoNodes.Pair pair = nodes.newPair("noschema");
        assertThatThrownBy(() -> LockstepDataSource.start(pair.config().installSchema(false).build()))
                .isInstanceOf(SQLException.class)
                .hasMessageContaining("node node-a has no Lockstep schema")
                .satisfies(e -> assertThat(sqlState(e)).isEqualTo("55000"));
    }

    @Test
    void twoPrincipalsAreRefusedAtStart() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("twoprincipals");
        pair.start().close();
        // Both principal at one epoch: no node can be chosen. (A principal at a higher epoch is a
        // forced service without a witness; NoWitnessTest covers it.)
        for (Connection node : List.of(pair.principal(), pair.mirror())) {
            try (node; Statement st = node.createStatement()) {
                st.execute("SELECT lockstep.change_role('principal', 2)");
            }
        }
        assertThatThrownBy(pair::start).isInstanceOf(SQLException.class)
                .hasMessageContaining("node node-b is configured as mirror but is principal at epoch 2")
                .satisfies(e -> assertThat(sqlState(e)).isEqualTo("55000"));
    }
}
