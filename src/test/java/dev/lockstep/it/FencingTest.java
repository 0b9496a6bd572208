package dev.lockstep.it;

import dev.lockstep.LockstepDataSource;
import org.junit.jupiter.api.Test;

import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static dev.lockstep.it.TwoNodes.value;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/** I4: every transaction checks its node's (role, epoch) under a shared lock held to its end. */
class FencingTest extends OnTwoNodes {

    private static CompletableFuture<Void> changeRoleInBackground(TwoNodes.Pair pair, String role, long epoch) {
        return CompletableFuture.runAsync(() -> {
            try (Connection p = pair.principal(); Statement st = p.createStatement()) {
                st.execute("SET lock_timeout = '20s'");
                st.execute("SELECT lockstep.change_role('" + role + "', " + epoch + ")");
            } catch (SQLException e) {
                throw new IllegalStateException(e);
            }
        });
    }

    /** A started-and-stopped partnership whose nodes hold the mirrored table {@code t (id int PRIMARY KEY)}. */
    private TwoNodes.Pair pairWithTableT(String name) throws Exception {
        TwoNodes.Pair pair = nodes.newPair(name);
        try (LockstepDataSource ds = pair.start(); Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE t (id int PRIMARY KEY)");
        }
        return pair;
    }

    private static void assertTableTEmptyOnBothAndNothingPrepared(TwoNodes.Pair pair) throws SQLException {
        try (Connection p = pair.principal(); Connection m = pair.mirror()) {
            assertThat(value(p, "SELECT count(*) FROM t")).isEqualTo(0L);
            assertThat(value(m, "SELECT count(*) FROM t")).isEqualTo(0L);
            assertThat(TwoNodes.lockstepPrepared(p)).isEmpty();
        }
    }

    private static boolean roleChangeIsWaiting(TwoNodes.Pair pair) throws SQLException {
        try (Connection p = pair.principal()) {
            return (Boolean) value(p, "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    + " AND query LIKE '%change_role%' AND datname = current_database())");
        }
    }

    /**
     * Under REPEATABLE READ or SERIALIZABLE a transaction's snapshot can predate a change of the
     * principal's mirroring state (its mirror recorded lost, with exposed commits following).
     * TRUNCATE and DDL do not conflict row by row with those commits, so they are refused there
     * (0A000, the transaction rolled back, neither node changed) and run under READ COMMITTED.
     */
    @Test
    void truncateAndDdlAreRefusedUnderSnapshotIsolationAndRunUnderReadCommitted() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("rrstate");
        try (LockstepDataSource ds = pair.start(); Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE t (id int PRIMARY KEY)");
            st.executeUpdate("INSERT INTO t VALUES (1)");
            c.setAutoCommit(false);
            for (int isolation : new int[] {Connection.TRANSACTION_REPEATABLE_READ, Connection.TRANSACTION_SERIALIZABLE}) {
                c.setTransactionIsolation(isolation);
                for (String statement : new String[] {"TRUNCATE t", "ALTER TABLE t ADD COLUMN note text"}) {
                    st.executeUpdate("INSERT INTO t VALUES (2)");
                    assertThatThrownBy(() -> st.execute(statement)).as(statement).isInstanceOf(SQLException.class)
                            .hasMessageContaining("node-a").hasMessageContaining("READ COMMITTED")
                            .extracting(e -> ((SQLException) e).getSQLState()).isEqualTo("0A000");
                    c.rollback();
                }
            }
            // READ UNCOMMITTED runs as READ COMMITTED in PostgreSQL (and READ COMMITTED is what
            // the rest of the suite uses).
            c.setTransactionIsolation(Connection.TRANSACTION_READ_UNCOMMITTED);
            st.execute("ALTER TABLE t ADD COLUMN note text");
            c.commit();
        }
        try (Connection p = pair.principal(); Connection m = pair.mirror()) {
            for (Connection node : new Connection[] {p, m}) {
                assertThat(value(node, "SELECT count(*) FROM t")).isEqualTo(1L);
                assertThat(value(node, "SELECT count(*) FROM information_schema.columns WHERE table_name = 't'")).isEqualTo(2L);
            }
        }
    }

    @Test
    void anEpochChangeWaitsForTheTransactionsThatSawTheOldEpoch() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("fence");
        try (LockstepDataSource ds = pair.start(); Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE t (id int PRIMARY KEY)");
            c.setAutoCommit(false);
            st.executeUpdate("INSERT INTO t VALUES (1)");
            CompletableFuture<Void> change = changeRoleInBackground(pair, "principal", 2);
            await().atMost(Duration.ofSeconds(10)).until(() -> roleChangeIsWaiting(pair));
            assertThat(change).isNotDone();
            c.commit();
            change.get(10, TimeUnit.SECONDS);

            // The epoch moved: this coordinator (still at epoch 1) can commit nowhere.
            assertThatThrownBy(() -> st.executeUpdate("INSERT INTO t VALUES (2)"))
                    .isInstanceOf(SQLException.class)
                    .hasMessageContaining("fenced").hasMessageContaining("node-a").hasMessageContaining("epoch 2")
                    .extracting(e -> ((SQLException) e).getSQLState()).isEqualTo("25006");
            c.rollback();
        }
        try (Connection p = pair.principal(); Connection m = pair.mirror()) {
            assertThat(value(p, "SELECT count(*) FROM t")).isEqualTo(1L);
            assertThat(value(m, "SELECT count(*) FROM t")).isEqualTo(1L);
        }
    }

    @Test
    void aTransactionBegunBeforeTheEpochChangedCannotCommitAfterIt() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("fence");
        try (LockstepDataSource ds = pair.start(); Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE t (id int PRIMARY KEY)");
            c.setAutoCommit(false);
            st.executeQuery("SELECT count(*) FROM t").close();
            changeRoleInBackground(pair, "mirror", 2).get(10, TimeUnit.SECONDS);
            assertThatThrownBy(() -> {
                st.executeUpdate("INSERT INTO t VALUES (1)");
                c.commit();
            }).isInstanceOf(SQLException.class).hasMessageContaining("node-a is mirror at epoch 2")
                    .extracting(e -> ((SQLException) e).getSQLState()).isEqualTo("25006");
            c.rollback();
        }
        try (Connection p = pair.principal(); Connection m = pair.mirror()) {
            assertThat(value(p, "SELECT count(*) FROM t")).isEqualTo(0L);
            assertThat(value(m, "SELECT count(*) FROM t")).isEqualTo(0L);
        }
    }

    /**
     * A session that writes a mirrored table on the principal itself, at the right epoch, but
     * commits without the protocol (no collect), or writes again after collect, would leave a
     * change on the principal that the mirror never sees: the commit, or the late write, is refused.
     */
    @Test
    void aCommitThatBypassesTheProtocolIsRefusedAndLeavesNothing() throws Exception {
        TwoNodes.Pair pair = pairWithTableT("guard");
        try (Connection p = pair.principal(); Statement st = p.createStatement()) {
            // The CREATE TABLE went through the protocol: collect deleted its guard row.
            assertThat(value(p, "SELECT count(*) FROM lockstep.capture_guard")).isEqualTo(0L);
            st.execute("SET lockstep.epoch = '1'");
            p.setAutoCommit(false);
            st.executeUpdate("INSERT INTO t VALUES (1)");
            assertThatThrownBy(p::commit).isInstanceOf(SQLException.class)
                    .hasMessageContaining("node-a").hasMessageContaining("outside the Lockstep commit protocol")
                    .extracting(e -> ((SQLException) e).getSQLState()).isEqualTo("25006");
            // Checking constraints early (SET CONSTRAINTS ALL IMMEDIATE) does not open a way around it.
            st.executeUpdate("INSERT INTO t VALUES (5)");
            st.execute("SET CONSTRAINTS ALL IMMEDIATE");
            st.executeUpdate("INSERT INTO t VALUES (6)");
            st.execute("SET CONSTRAINTS ALL IMMEDIATE");
            assertThatThrownBy(p::commit).isInstanceOf(SQLException.class)
                    .hasMessageContaining("outside the Lockstep commit protocol")
                    .extracting(e -> ((SQLException) e).getSQLState()).isEqualTo("25006");
            st.execute("SET CONSTRAINTS ALL IMMEDIATE");
            st.executeUpdate("INSERT INTO t VALUES (7)");
            assertThatThrownBy(() -> st.execute("PREPARE TRANSACTION 'guard-test-0'")).isInstanceOf(SQLException.class)
                    .hasMessageContaining("outside the Lockstep commit protocol")
                    .extracting(e -> ((SQLException) e).getSQLState()).isEqualTo("25006");
            st.executeUpdate("INSERT INTO t VALUES (2)");
            st.execute("SELECT * FROM lockstep.collect('guard-test')");
            // A write after collect would reach the principal alone: it fails at once.
            assertThatThrownBy(() -> st.executeUpdate("INSERT INTO t VALUES (3)")).isInstanceOf(SQLException.class)
                    .hasMessageContaining("after its changes were collected")
                    .extracting(e -> ((SQLException) e).getSQLState()).isEqualTo("25006");
            p.rollback();
            // A transaction that collects and writes nothing after it still prepares: the guard
            // refuses bypasses only.
            st.executeUpdate("INSERT INTO t VALUES (4)");
            st.execute("SELECT * FROM lockstep.collect('guard-test-2')");
            st.execute("PREPARE TRANSACTION 'guard-test-2'");
            p.setAutoCommit(true);
            st.execute("ROLLBACK PREPARED 'guard-test-2'");
        }
        assertTableTEmptyOnBothAndNothingPrepared(pair);
        try (Connection p = pair.principal()) {
            assertThat(value(p, "SELECT count(*) FROM lockstep.journal WHERE gid LIKE 'guard-test%'")).isEqualTo(0L);
        }
    }

    @Test
    void aPreparedTransactionHoldsOffTheEpochChangeUntilItIsSettled() throws Exception {
        TwoNodes.Pair pair = pairWithTableT("fence");
        try (Connection p = pair.principal(); Statement st = p.createStatement()) {
            st.execute("SET lockstep.epoch = '1'");
            st.execute("BEGIN");
            st.execute("SELECT lockstep.fence()");
            st.execute("PREPARE TRANSACTION 'held-by-test'");
            CompletableFuture<Void> change = changeRoleInBackground(pair, "principal", 2);
            await().atMost(Duration.ofSeconds(10)).until(() -> roleChangeIsWaiting(pair));
            assertThat(change).isNotDone();
            st.execute("ROLLBACK PREPARED 'held-by-test'");
            change.get(10, TimeUnit.SECONDS);
            assertThat(value(p, "SELECT epoch FROM lockstep.node_state")).isEqualTo(2L);
        }
    }

    @Test
    void aMirrorAtAnotherEpochRefusesToApplyAndNothingCommits() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("fence");
        try (LockstepDataSource ds = pair.start(); Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE t (id int PRIMARY KEY)");
            try (Connection m = pair.mirror(); Statement ms = m.createStatement()) {
                ms.execute("SELECT lockstep.change_role('mirror', 5)");
            }
            assertThatThrownBy(() -> st.executeUpdate("INSERT INTO t VALUES (1)"))
                    .isInstanceOf(SQLException.class)
                    .hasMessageContaining("mirror node node-b").hasMessageContaining("fenced")
                    .extracting(e -> ((SQLException) e).getSQLState()).isEqualTo("25006");
        }
        assertTableTEmptyOnBothAndNothingPrepared(pair);
    }

    @Test
    void writesThatBypassTheCoordinatorAreRefused() throws Exception {
        TwoNodes.Pair pair = pairWithTableT("fence");
        for (boolean principal : new boolean[] {true, false}) {
            try (Connection direct = principal ? pair.principal() : pair.mirror(); Statement st = direct.createStatement()) {
                assertThatThrownBy(() -> st.executeUpdate("INSERT INTO t VALUES (1)"))
                        .isInstanceOf(SQLException.class).hasMessageContaining("only through a Lockstep coordinator")
                        .extracting(e -> ((SQLException) e).getSQLState()).isEqualTo("25006");
            }
        }
    }

    /**
     * Capture triggers do not fire under {@code session_replication_role = replica}, which bulk
     * loaders set to skip triggers: such a write to a mirrored table, through the data source or
     * straight to either node, is refused instead of reaching one node alone.
     */
    @Test
    void writesInReplicaModeAreRefusedInsteadOfBypassingCapture() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("replicamode");
        try (LockstepDataSource ds = pair.start(); Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE t (id int PRIMARY KEY)");
            st.execute("INSERT INTO t VALUES (1)");
            st.execute("SET session_replication_role = replica");
            for (String write : new String[] {"INSERT INTO t VALUES (2)", "UPDATE t SET id = 3", "DELETE FROM t", "TRUNCATE t"}) {
                assertThatThrownBy(() -> st.execute(write)).as(write)
                        .isInstanceOf(SQLException.class)
                        .hasMessageContaining("of mirrored table public.t on node node-a is refused under session_replication_role = replica")
                        .extracting(e -> ((SQLException) e).getSQLState()).isEqualTo("55000");
            }
            // DDL in that mode would not be captured either; nor may the guard itself go.
            assertThatThrownBy(() -> st.execute("ALTER TABLE t ADD COLUMN lost text"))
                    .isInstanceOf(SQLException.class)
                    .hasMessageContaining("DDL on node node-a is refused under session_replication_role = replica")
                    .extracting(e -> ((SQLException) e).getSQLState()).isEqualTo("55000");
            st.execute("SET session_replication_role = DEFAULT");
            assertThatThrownBy(() -> st.execute("DROP TRIGGER lockstep_replica_guard ON t"))
                    .isInstanceOf(SQLException.class).hasMessageContaining("lockstep_replica_guard on public.t")
                    .extracting(e -> ((SQLException) e).getSQLState()).isEqualTo("55000");
            st.execute("INSERT INTO t VALUES (2)");
            st.execute("ALTER TABLE t ADD COLUMN note text");
            for (boolean principal : new boolean[] {true, false}) {
                try (Connection direct = principal ? pair.principal() : pair.mirror(); Statement ds2 = direct.createStatement()) {
                    ds2.execute("SET session_replication_role = replica");
                    assertThatThrownBy(() -> ds2.executeUpdate("UPDATE t SET note = 'bypass'"))
                            .isInstanceOf(SQLException.class).hasMessageContaining("refused under session_replication_role = replica")
                            .extracting(e -> ((SQLException) e).getSQLState()).isEqualTo("55000");
                }
            }
            try (Connection p = pair.principal(); Connection m = pair.mirror()) {
                String rows = "SELECT id, note FROM t ORDER BY id";
                assertThat(TwoNodes.rows(p, rows)).isEqualTo(TwoNodes.rows(m, rows)).hasSize(2);
            }
            assertThat(ds.partnership().verify().identical()).isTrue();
        }
    }
}
