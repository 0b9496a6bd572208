package dev.lockstep.it;

import dev.lockstep.LockstepDataSource;
import dev.lockstep.commit.InDoubtResolver;
import org.junit.jupiter.api.Test;

import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static dev.lockstep.it.TwoNodes.lockstepPrepared;
import static dev.lockstep.it.TwoNodes.rows;
import static dev.lockstep.it.TwoNodes.value;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** I2: the resolver settles by rule, leaves young transactions of other coordinators alone and never touches foreign ones. */
class InDoubtResolutionTest extends OnTwoNodes {

    /** Prepares, on one node, a transaction that inserts {@code id} as another coordinator would. */
    private static void prepareAs(Connection node, String gid, int id, boolean withJournal) throws Exception {
        try (Statement st = node.createStatement()) {
            st.execute("BEGIN");
            st.execute("SET LOCAL session_replication_role = replica");
            st.execute("SET LOCAL lockstep.applier = on");
            st.execute("INSERT INTO t VALUES (" + id + ")");
            if (withJournal) {
                st.execute("INSERT INTO lockstep.journal VALUES (1, " + (1000 + id) + ", '" + gid + "', 'test', now(), '{}')");
            }
            st.execute("PREPARE TRANSACTION '" + gid + "'");
        }
    }

    /**
     * Slows the drain of every commit that inserts into {@code t} by 2 s on the principal: a
     * deferred trigger runs inside lockstep.collect, in the round trip that may also prepare.
     */
    private static void slowDrainOnPrincipal(TwoNodes.Pair pair) throws SQLException {
        try (Connection p = pair.principal(); Statement ps = p.createStatement()) {
            ps.execute("SET lockstep.internal = on");
            ps.execute("CREATE FUNCTION slowly() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(2); RETURN NULL; END $$");
            ps.execute("CREATE CONSTRAINT TRIGGER collected_slowly AFTER INSERT ON t DEFERRABLE INITIALLY DEFERRED"
                    + " FOR EACH ROW EXECUTE FUNCTION slowly()");
        }
    }

    @Test
    void eachRuleAndTheGracePeriod() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("indoubt");
        try (LockstepDataSource ds = LockstepDataSource.start(pair.config().resolverInterval(Duration.ofHours(1)).build());
             Connection c = ds.getConnection(); Statement st = c.createStatement();
             Connection p = pair.principal(); Connection m = pair.mirror()) {
            st.execute("CREATE TABLE t (id int PRIMARY KEY)");
            String onlyPrincipal = "lockstep:indoubt:1:other:1";
            String onBoth = "lockstep:indoubt:1:other:2";
            String committedOnMirror = "lockstep:indoubt:1:other:3";
            prepareAs(p, onlyPrincipal, 1, true);
            prepareAs(p, onBoth, 2, true);
            prepareAs(m, onBoth, 2, true);
            prepareAs(p, committedOnMirror, 3, true);
            prepareAs(m, committedOnMirror, 3, true);
            m.createStatement().execute("COMMIT PREPARED '" + committedOnMirror + "'");
            try (Statement foreign = m.createStatement()) {
                foreign.execute("BEGIN");
                foreign.execute("PREPARE TRANSACTION 'lockstep-lookalike:indoubt:1:x:1'");
            }

            // Young: only the one already committed on a node may be finished at once.
            InDoubtResolver.Result young = ds.partnership().resolveInDoubt();
            assertThat(young.committed()).isEqualTo(1);
            assertThat(young.rolledBack()).isZero();
            assertThat(young.waiting()).isEqualTo(3);

            await().atMost(Duration.ofSeconds(20)).pollInterval(Duration.ofMillis(500)).untilAsserted(() -> {
                ds.partnership().resolveInDoubt();
                assertThat(lockstepPrepared(p)).isEmpty();
                assertThat(lockstepPrepared(m)).isEmpty();
            });
            assertThat(rows(p, "SELECT id FROM t ORDER BY id")).containsExactly(java.util.List.of(2), java.util.List.of(3));
            assertThat(rows(m, "SELECT id FROM t ORDER BY id")).containsExactly(java.util.List.of(2), java.util.List.of(3));
            assertThat(value(m, "SELECT count(*) FROM pg_prepared_xacts WHERE gid = 'lockstep-lookalike:indoubt:1:x:1'")).isEqualTo(1L);

            // The rolled-back gid is barred on the mirror: a live commit that was merely slow
            // cannot prepare it there afterwards and commit it on the mirror alone.
            assertThat(value(m, "SELECT epoch FROM lockstep.journal WHERE gid = '" + onlyPrincipal + "'")).isEqualTo(0L);
            assertThat(value(m, "SELECT lockstep.committed('" + onlyPrincipal + "')")).isEqualTo(false);
            org.assertj.core.api.Assertions.assertThatThrownBy(() -> prepareAs(m, onlyPrincipal, 4, true))
                    .isInstanceOf(java.sql.SQLException.class).hasMessageContaining("journal_gid_key");
            m.createStatement().execute("ROLLBACK");
            m.createStatement().execute("ROLLBACK PREPARED 'lockstep-lookalike:indoubt:1:x:1'");
        }
    }

    /**
     * A commit slow enough that another coordinator's resolution found it committed on the mirror
     * and committed it on the principal first: its own COMMIT PREPARED finds nothing left to
     * commit, and commit() reports success, not an unknown outcome, as both nodes hold it.
     */
    @Test
    void aCommitThatAnotherCoordinatorFinishedFirstIsAcknowledged() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("finished");
        java.util.concurrent.atomic.AtomicBoolean armed = new java.util.concurrent.atomic.AtomicBoolean();
        dev.lockstep.commit.CommitObserver resolvedByAnother = (step, gid) -> {
            if (step == dev.lockstep.core.CommitStep.MIRROR_COMMITTED && armed.compareAndSet(true, false)) {
                try (Connection p = pair.principal(); Statement ps = p.createStatement()) {
                    ps.execute("COMMIT PREPARED '" + gid + "'");
                } catch (SQLException e) {
                    throw new IllegalStateException(e);
                }
            }
        };
        try (LockstepDataSource ds = LockstepDataSource.start(pair.config().commitObserver(resolvedByAnother).build());
             Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE t (id int PRIMARY KEY)");
            armed.set(true);
            assertThat(st.executeUpdate("INSERT INTO t VALUES (1)")).isEqualTo(1);
            assertThat(armed).isFalse();
            st.executeUpdate("INSERT INTO t VALUES (2)");
            assertThat(ds.partnership().verify().identical()).isTrue();
        }
        try (Connection p = pair.principal(); Connection m = pair.mirror()) {
            assertThat(rows(m, "SELECT id FROM t ORDER BY id")).isEqualTo(rows(p, "SELECT id FROM t ORDER BY id"))
                    .containsExactly(java.util.List.of(1), java.util.List.of(2));
            assertThat(lockstepPrepared(p)).isEmpty();
        }
    }

    /**
     * A call deadline that outlasts the slowed drain, so that only a broken link ends the commit,
     * and an in-doubt grace no test waits out: only the coordinator's own resolution settles.
     */
    private static LockstepDataSource patientDataSource(TwoNodes.Pair pair) throws SQLException {
        return LockstepDataSource.start(pair.config().remoteCallTimeout(Duration.ofSeconds(6))
                .inDoubtGrace(Duration.ofMinutes(10)).build());
    }

    /**
     * The link to the principal breaks after {@code PREPARE TRANSACTION} was sent with the drain:
     * the principal may hold the transaction prepared, so the application must hear "outcome
     * unknown" (a retry of "rolled back" work could apply it twice), and resolution settles it.
     */
    @Test
    void aLinkLostWhilePreparingIsOutcomeUnknownAndResolutionSettlesIt() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("preparing");
        try (LockstepDataSource ds = patientDataSource(pair)) {
            try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
                st.execute("CREATE TABLE t (id int PRIMARY KEY)");
            }
            slowDrainOnPrincipal(pair);
            ExecutorService client = Executors.newSingleThreadExecutor();
            try (Connection p = pair.principal(); Connection m = pair.mirror()) {
                Future<SQLException> attempt = TwoNodes.attempt(client, ds, "INSERT INTO t VALUES (1)");
                TwoNodes.awaitSleepingBackend(p);
                nodes.a().proxy().partition();
                SQLException failure = attempt.get(30, TimeUnit.SECONDS);
                assertThat((Throwable) failure).isNotNull();
                assertThat(failure.getSQLState()).isEqualTo("40003");
                assertThat(failure.getMessage()).contains("may be prepared on principal node node-a");
                // The server finished the round trip after the link broke: "rolled back" would have been untrue.
                await().atMost(Duration.ofSeconds(10)).until(() -> !lockstepPrepared(p).isEmpty());
                nodes.a().proxy().heal();

                await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> {
                    assertThat(lockstepPrepared(p)).isEmpty();
                    assertThat(lockstepPrepared(m)).isEmpty();
                });
                assertThat(rows(p, "SELECT id FROM t")).isEqualTo(rows(m, "SELECT id FROM t"));
            } finally {
                nodes.a().proxy().heal();
                client.shutdownNow();
            }
        }
    }

    /**
     * A transaction that did not look like a writer takes its mirror connection only after the
     * principal prepared. When none can be had and the principal's rollback fails too, the
     * transaction stays prepared there: the application must hear "outcome unknown", not "rolled back".
     */
    @Test
    void noMirrorConnectionAfterPrepareAndAFailedRollbackIsOutcomeUnknown() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("afterprepare");
        try (LockstepDataSource ds = patientDataSource(pair)) {
            try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
                st.execute("CREATE TABLE t (id int PRIMARY KEY)");
                // Its call reads like a query, so the commit drains before it takes a mirror connection.
                st.execute("CREATE FUNCTION add_row(v int) RETURNS int LANGUAGE sql AS 'INSERT INTO t VALUES (v) RETURNING id'");
            }
            slowDrainOnPrincipal(pair);
            ExecutorService client = Executors.newSingleThreadExecutor();
            try (Connection p = pair.principal(); Connection m = pair.mirror()) {
                Future<SQLException> attempt = TwoNodes.attempt(client, ds, "SELECT add_row(1)");
                TwoNodes.awaitSleepingBackend(p);
                // Silent, so that the mirror is not yet written off when the drain returns (a refused
                // mirror would be, at once, and the drain would then refuse the lockstep commit).
                nodes.b().proxy().blackhole();
                // Prepared; the mirror connection is still being sought (for up to connectTimeout).
                await().atMost(Duration.ofSeconds(10)).pollInterval(Duration.ofMillis(20)).until(() -> !lockstepPrepared(p).isEmpty());
                nodes.a().proxy().partition();
                SQLException failure = attempt.get(30, TimeUnit.SECONDS);
                nodes.a().proxy().heal();
                nodes.b().proxy().partition();
                nodes.b().proxy().heal();
                assertThat((Throwable) failure).isNotNull();
                assertThat(failure.getSQLState()).isEqualTo("40003");
                assertThat(failure.getMessage()).contains("found no connection to mirror node node-b and its rollback on principal node node-a failed too");
                assertThat(lockstepPrepared(p)).hasSize(1);

                await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> {
                    assertThat(lockstepPrepared(p)).isEmpty();
                    assertThat(lockstepPrepared(m)).isEmpty();
                    assertThat(rows(p, "SELECT id FROM t")).isEqualTo(rows(m, "SELECT id FROM t"));
                });
            } finally {
                nodes.a().proxy().heal();
                nodes.b().proxy().partition();
                nodes.b().proxy().heal();
                client.shutdownNow();
            }
        }
    }
}
