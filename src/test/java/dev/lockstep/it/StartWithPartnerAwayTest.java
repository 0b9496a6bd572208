package dev.lockstep.it;

import dev.lockstep.LockstepConfig;
import dev.lockstep.LockstepDataSource;
import dev.lockstep.NodeConfig;
import dev.lockstep.commit.CommitObserver;
import dev.lockstep.core.CommitStep;
import dev.lockstep.core.MirroringState;
import dev.lockstep.core.PartnerHealth;
import dev.lockstep.core.QuorumRules;
import dev.lockstep.core.PartnershipRecord;
import dev.lockstep.events.LockstepEvent;
import dev.lockstep.testing.TcpProxy;
import org.junit.jupiter.api.Test;

import java.sql.Connection;
import java.sql.SQLException;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

import static dev.lockstep.it.TwoNodes.lockstepPrepared;
import static dev.lockstep.it.TwoNodes.rows;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/**
 * An application that (re)starts while a partner is down: with the witness's record of the
 * partnership, a data source starts on the partner that answers and goes on as if the other had
 * failed just after the start. Otherwise an application instance restarted during an outage
 * could not start at all, and with no other instance running nobody would fail over.
 */
class StartWithPartnerAwayTest extends OnTwoNodesAndWitness {

    private static final Duration PARTNER_TIMEOUT = Duration.ofSeconds(2);

    private final AtomicLong nextId = new AtomicLong();

    private LockstepConfig config(TwoNodes.Pair pair) {
        return pair.config().witness(witness.config()).partnerTimeout(PARTNER_TIMEOUT)
                .heartbeatInterval(Duration.ofMillis(200)).build();
    }

    @Test
    void aDataSourceStartsWithTheMirrorDownCommitsExposedAndCatchesTheMirrorUpWhenItReturns() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("mirror-away");
        LockstepConfig config = config(pair);
        Set<Long> acknowledged = tableWithOneRow(config);
        nodes.b().kill();
        try {
            try (LockstepDataSource ds = LockstepDataSource.start(config)) {
                insertUntilAcknowledged(ds, acknowledged);
                assertThat(record(pair).state()).isEqualTo(MirroringState.DISCONNECTED);
                assertThat(record(pair).principal()).isEqualTo("node-a");
                insertUntilAcknowledged(ds, acknowledged);
            }
        } finally {
            nodes.b().restart();
        }
        try (LockstepDataSource ds = LockstepDataSource.start(config)) {
            backInLockstep(pair, ds, acknowledged);
        }
    }

    @Test
    void aDataSourceStartsWithThePrincipalDownFailsOverAndTheOldPrincipalRejoinsAsMirrorAtTheNextStart() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("principal-away");
        LockstepConfig config = config(pair);
        Set<Long> acknowledged = tableWithOneRow(config);
        nodes.a().kill();
        try {
            // Nobody else runs: the coordinator that starts now is the one to fail over.
            try (LockstepDataSource ds = LockstepDataSource.start(config)) {
                await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(100)).ignoreExceptions()
                        .until(() -> record(pair).principal().equals("node-b"));
                assertThat(record(pair).epoch()).isEqualTo(2);
                insertUntilAcknowledged(ds, acknowledged);
            }
        } finally {
            nodes.a().restart();
        }
        // The old principal came back while no coordinator ran; the next start makes it mirror.
        try (LockstepDataSource ds = LockstepDataSource.start(config)) {
            assertThat(ds.partnership().status().principal()).isEqualTo("node-b");
            try (Connection a = pair.principal()) {
                assertThat(rows(a, "SELECT role, epoch FROM lockstep.node_state")).containsExactly(List.of("mirror", 2L));
            }
            backInLockstep(pair, ds, acknowledged);
        }
    }

    @Test
    void withBothPartnersDownOrForANewPartnershipTheStartIsRefusedNamingTheNode() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("both-away");
        LockstepConfig config = config(pair);
        try (LockstepDataSource ds = LockstepDataSource.start(config)) {
            assertThat(TwoNodes.acknowledged(ds, "CREATE TABLE t (id bigint PRIMARY KEY)")).isTrue();
        }
        nodes.a().proxy().partition();
        nodes.b().proxy().partition();
        try {
            assertThatThrownBy(() -> LockstepDataSource.start(config)).isInstanceOf(SQLException.class)
                    .satisfies(e -> assertThat(((SQLException) e).getSQLState()).startsWith("08"))
                    .hasMessageContaining("neither partner answers").hasMessageContaining("node-a").hasMessageContaining("node-b");
            // The witness has no record of this one: nothing says which node may serve alone.
            TwoNodes.Pair fresh = nodes.newPair("new-away");
            nodes.b().proxy().heal();
            nodes.a().proxy().partition();
            assertThatThrownBy(() -> LockstepDataSource.start(config(fresh))).isInstanceOf(SQLException.class)
                    .satisfies(e -> assertThat(((SQLException) e).getSQLState()).startsWith("08"))
                    .hasMessageContaining("node-a");
            // That refused start left the witness a record; the mirror is still blank, and a
            // blank mirror may not stand in for the principal (it would be promoted empty).
            assertThatThrownBy(() -> LockstepDataSource.start(config(fresh))).isInstanceOf(SQLException.class)
                    .satisfies(e -> assertThat(((SQLException) e).getSQLState()).startsWith("08"))
                    .hasMessageContaining("mirror node-b is blank, so it does not serve alone");
            assertThat(record(fresh).epoch()).isEqualTo(1);
        } finally {
            nodes.a().proxy().heal();
            nodes.b().proxy().heal();
        }
    }

    @Test
    void aDataSourceStartsWithTheMirrorFrozenWithinItsConnectTimeout() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("mirror-frozen");
        LockstepConfig config = config(pair);
        Set<Long> acknowledged = tableWithOneRow(config);
        nodes.b().freeze();
        try {
            // Bounded by the login timeout (connectTimeout, 2 s here), not by the frozen server.
            try (LockstepDataSource ds = await().atMost(Duration.ofSeconds(20)).until(() -> LockstepDataSource.start(config),
                    started -> true)) {
                insertUntilAcknowledged(ds, acknowledged);
                assertThat(record(pair).state()).isEqualTo(MirroringState.DISCONNECTED);
            }
        } finally {
            nodes.b().thaw();
        }
        try (LockstepDataSource ds = LockstepDataSource.start(config)) {
            awaitSynchronizedAndIdentical(pair, ds);
        }
        assertAcknowledgedOnBoth(pair, acknowledged);
    }

    @Test
    void aCoordinatorStartingWithoutThePrincipalNeverPromotesWhileAnotherStillReachesIt() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("cut-off-start");
        LockstepConfig first = config(pair);
        try (TcpProxy secondToA = TcpProxy.start("second-node-a", "127.0.0.1", nodes.a().serverPort());
             LockstepDataSource running = LockstepDataSource.start(first)) {
            assertThat(TwoNodes.acknowledged(running, "CREATE TABLE t (id bigint PRIMARY KEY)")).isTrue();
            LockstepConfig second = pair.config().witness(witness.config()).partnerTimeout(PARTNER_TIMEOUT)
                    .heartbeatInterval(Duration.ofMillis(200))
                    .principal(NodeConfig.of("node-a", "jdbc:postgresql://127.0.0.1:" + secondToA.port() + "/" + pair.dbA(),
                            nodes.a().user(), nodes.a().password()))
                    .build();
            secondToA.partition();
            Set<Long> acknowledged = new HashSet<>();
            try (LockstepDataSource cutOff = LockstepDataSource.start(second)) {
                // It sees the principal failed and would fail over, but the first coordinator
                // still reaches the principal and keeps committing in lockstep, so nobody may (I5).
                int before = acknowledged.size();
                await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(100))
                        .until(() -> cutOff.partnership().status().action() == QuorumRules.Action.CUT_OFF_FROM_PRINCIPAL);
                assertThat(cutOff.partnership().status().principalHealth()).isEqualTo(PartnerHealth.FAILED);
                insertUntilAcknowledged(running, acknowledged);
                assertThat(acknowledged).hasSize(before + 1);
                assertThat(record(pair).epoch()).isEqualTo(1);
                assertThat(record(pair).principal()).isEqualTo("node-a");
                assertThat(record(pair).state()).isEqualTo(MirroringState.SYNCHRONIZED);
                assertThat(cutOff.partnership().status().epoch()).isEqualTo(1);
            }
            assertAcknowledgedOnBoth(pair, acknowledged);
        }
    }

    /**
     * The principal is put back to an older backup while no coordinator runs: it lacks commits
     * its SYNCHRONIZED mirror holds. The start refuses (lockstep on top of it would build on a
     * history without acknowledged commits) and names the remedy, which works: with the old
     * principal stopped, a start fails over to the mirror, and the old principal rejoins as mirror
     * and is caught up with what it lacked.
     */
    @Test
    void aPrincipalPutBackToAnOlderBackupIsRefusedAndStoppingItFailsOverToTheMirrorThatHoldsEverything() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("principal-putback");
        LockstepConfig config = config(pair);
        Set<Long> acknowledged = tableWithOneRow(config);
        try (LockstepDataSource ds = LockstepDataSource.start(config)) {
            for (int i = 0; i < 5; i++) {
                insertUntilAcknowledged(ds, acknowledged);
            }
        }
        removeNewestFromThePrincipal(pair, acknowledged);
        assertThatThrownBy(() -> LockstepDataSource.start(config)).isInstanceOf(SQLException.class)
                .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("55000"))
                .hasMessageContaining("principal node-a lacks journal record 1/")
                .hasMessageContaining("that its SYNCHRONIZED mirror node-b committed")
                .hasMessageContaining("stop node-a and start again");
        assertThat(record(pair).epoch()).isEqualTo(1);
        nodes.a().kill();
        try (LockstepDataSource ds = LockstepDataSource.start(config)) {
            failedOverThenTheOldPrincipalRejoins(pair, ds, acknowledged);
        }
    }

    /**
     * A principal put back to an older copy while the coordinator runs, faster than the partner
     * timeout, and given a commit on top of its gap before the monitor compares it: the monitor
     * finds that it lacks a commit its mirror holds and takes no more writes on it in the epoch (a
     * write fails with 55000 naming the remedy); stopping it fails over to the mirror, which holds
     * everything, and it rejoins as mirror with every acknowledged row.
     */
    @Test
    void aPrincipalPutBackWhileTheCoordinatorRunsTakesNoMoreWritesAndStoppingItFailsOver() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("principal-putback-live");
        List<LockstepEvent.PrincipalLostCommits> lost = new CopyOnWriteArrayList<>();
        // Probes 5 s apart: the commit after the restart lands before the probe that sees it.
        LockstepConfig config = pair.config().witness(witness.config()).partnerTimeout(Duration.ofSeconds(20))
                .remoteCallTimeout(Duration.ofSeconds(1)).heartbeatInterval(Duration.ofSeconds(5)).listener(e -> {
                    if (e instanceof LockstepEvent.PrincipalLostCommits l) {
                        lost.add(l);
                    }
                }).build();
        Set<Long> acknowledged = tableWithOneRow(config);
        try (LockstepDataSource ds = LockstepDataSource.start(config)) {
            for (int i = 0; i < 3; i++) {
                insertUntilAcknowledged(ds, acknowledged);
            }
            removeNewestFromThePrincipal(pair, acknowledged);
            try (Connection a = pair.principal(); Connection b = pair.mirror()) {
                // An older copy's journal sequence is behind too: its next record takes a position the mirror holds.
                Object held = TwoNodes.value(b, "SELECT max(seq) FROM lockstep.journal WHERE epoch > 0");
                TwoNodes.value(a, "SELECT setval('lockstep.journal_seq', " + held + " - 1)");
            }
            nodes.a().proxy().blackhole();
            try {
                nodes.a().stop();
                nodes.a().restart();
                await().atMost(Duration.ofSeconds(20)).until(() -> ds.partnership().status().principalHealth() == PartnerHealth.SUSPECT);
            } finally {
                nodes.a().proxy().heal();
            }
            assertThatThrownBy(() -> {
                try (Connection c = ds.getConnection(); java.sql.Statement st = c.createStatement()) {
                    st.execute("INSERT INTO t VALUES (" + nextId.incrementAndGet() + ")");
                }
            }).isInstanceOf(SQLException.class).satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("23505"))
                    .hasMessageContaining("the mirror holds that journal position from another transaction");
            insertUntilAcknowledged(ds, acknowledged);
            await().atMost(Duration.ofSeconds(30)).until(() -> !lost.isEmpty());
            assertThat(lost.get(0).reason()).contains(" lacks ").contains("stop node-a");
            assertThat(ds.partnership().status().action()).isEqualTo(QuorumRules.Action.STOP_WRITES);
            assertThatThrownBy(() -> {
                try (Connection c = ds.getConnection(); java.sql.Statement st = c.createStatement()) {
                    st.execute("INSERT INTO t VALUES (" + nextId.incrementAndGet() + ")");
                }
            }).isInstanceOf(SQLException.class).satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("55000"))
                    .hasMessageContaining("lacks commits that its mirror node node-b holds");
            nodes.a().kill();
            failedOverThenTheOldPrincipalRejoins(pair, ds, acknowledged);
        }
    }

    /**
     * With node-a killed: the data source fails over to node-b and commits there; node-a then
     * returns, rejoins as mirror and catches up (restarted in any case).
     */
    private void failedOverThenTheOldPrincipalRejoins(TwoNodes.Pair pair, LockstepDataSource ds, Set<Long> acknowledged)
            throws SQLException {
        boolean back = false;
        try {
            await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(100)).ignoreExceptions()
                    .until(() -> record(pair).principal().equals("node-b"));
            insertUntilAcknowledged(ds, acknowledged);
            nodes.a().restart();
            back = true;
            backInLockstep(pair, ds, acknowledged);
        } finally {
            if (!back) {
                nodes.a().restart();
            }
        }
    }

    /** The principal's newest acknowledged row and its journal record gone, as from an older copy. */
    private static void removeNewestFromThePrincipal(TwoNodes.Pair pair, Set<Long> acknowledged) throws SQLException {
        long newest = acknowledged.stream().mapToLong(Long::longValue).max().orElseThrow();
        try (Connection a = pair.principal(); java.sql.Statement st = a.createStatement()) {
            st.execute("SET session_replication_role = replica");
            st.execute("SET lockstep.applier = on");
            st.execute("DELETE FROM t WHERE id = " + newest);
            st.execute("DELETE FROM lockstep.journal WHERE epoch > 0 AND (epoch, seq) = (SELECT epoch, seq FROM lockstep.journal"
                    + " WHERE epoch > 0 ORDER BY epoch DESC, seq DESC LIMIT 1)");
        }
    }

    /**
     * The check above must not mistake another coordinator's commit in flight for a loss: the
     * mirror has committed it, the principal has only prepared it. A start at that moment is
     * not refused, and the commit is acknowledged.
     */
    @Test
    void aStartDuringAnotherCoordinatorsCommitBetweenMirrorAndPrincipalIsNotRefused() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("start-mid-commit");
        CountDownLatch atMirrorCommitted = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        AtomicBoolean armed = new AtomicBoolean();
        CommitObserver holdAfterMirror = (step, gid) -> {
            if (step == CommitStep.MIRROR_COMMITTED && armed.compareAndSet(true, false)) {
                atMirrorCommitted.countDown();
                try {
                    release.await(30, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        };
        ExecutorService client = Executors.newSingleThreadExecutor();
        try (LockstepDataSource first = LockstepDataSource.start(pair.config().witness(witness.config())
                .partnerTimeout(PARTNER_TIMEOUT).heartbeatInterval(Duration.ofMillis(200)).commitObserver(holdAfterMirror).build())) {
            assertThat(TwoNodes.acknowledged(first, "CREATE TABLE t (id bigint PRIMARY KEY)")).isTrue();
            armed.set(true);
            Future<Boolean> held = client.submit(() -> TwoNodes.acknowledged(first, "INSERT INTO t VALUES (1)"));
            assertThat(atMirrorCommitted.await(30, TimeUnit.SECONDS)).isTrue();
            try (Connection a = pair.principal()) {
                assertThat(lockstepPrepared(a)).hasSize(1);
            }
            try (LockstepDataSource second = LockstepDataSource.start(config(pair))) {
                assertThat(record(pair).state()).isEqualTo(MirroringState.SYNCHRONIZED);
                release.countDown();
                assertThat(held.get(30, TimeUnit.SECONDS)).isTrue();
                assertThat(TwoNodes.acknowledged(second, "INSERT INTO t VALUES (2)")).isTrue();
                assertThat(second.partnership().verify().identical()).isTrue();
            }
            assertAcknowledgedOnBoth(pair, Set.of(1L, 2L));
        } finally {
            release.countDown();
            client.shutdownNow();
        }
    }

    /** A principal wiped and installed afresh does not serve alone: it would hide the data its mirror holds. */
    @Test
    void aBlankPrincipalDoesNotServeAloneWhileTheMirrorIsDown() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("blank-principal");
        LockstepConfig config = config(pair);
        Set<Long> acknowledged = tableWithOneRow(config);
        try (Connection admin = nodes.a().connectDirect("postgres"); java.sql.Statement st = admin.createStatement()) {
            st.execute("DROP DATABASE " + pair.dbA() + " WITH (FORCE)");
            st.execute("CREATE DATABASE " + pair.dbA());
        }
        nodes.b().kill();
        try {
            assertThatThrownBy(() -> LockstepDataSource.start(config)).isInstanceOf(SQLException.class)
                    .satisfies(e -> assertThat(((SQLException) e).getSQLState()).startsWith("08"))
                    .hasMessageContaining("principal node-a is blank, so it does not serve alone")
                    .hasMessageContaining("cannot connect to node node-b");
        } finally {
            nodes.b().restart();
        }
        try (Connection b = pair.mirror()) {
            assertThat(new HashSet<>(Writers.ids(b))).isEqualTo(acknowledged);
        }
    }

    /** Creates table t and commits one row through a data source, closed again; returns the row's id. */
    private Set<Long> tableWithOneRow(LockstepConfig config) throws SQLException {
        Set<Long> acknowledged = new HashSet<>();
        try (LockstepDataSource ds = LockstepDataSource.start(config)) {
            assertThat(TwoNodes.acknowledged(ds, "CREATE TABLE t (id bigint PRIMARY KEY)")).isTrue();
            insertUntilAcknowledged(ds, acknowledged);
        }
        return acknowledged;
    }

    /** Inserts a row, retrying as an application would until one attempt is acknowledged. */
    private void insertUntilAcknowledged(LockstepDataSource ds, Set<Long> acknowledged) {
        // Each attempt its own id: a failed attempt may still commit (40003), and must not collide.
        await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(100))
                .until(() -> {
                    long attempt = nextId.incrementAndGet();
                    if (TwoNodes.acknowledged(ds, "INSERT INTO t VALUES (" + attempt + ")")) {
                        acknowledged.add(attempt);
                        return true;
                    }
                    return false;
                });
    }

    /** Once both partners are back: SYNCHRONIZED and identical, commits in lockstep, nothing acknowledged lost. */
    private void backInLockstep(TwoNodes.Pair pair, LockstepDataSource ds, Set<Long> acknowledged) throws SQLException {
        awaitSynchronizedAndIdentical(pair, ds);
        insertUntilAcknowledged(ds, acknowledged);
        assertAcknowledgedOnBoth(pair, acknowledged);
    }

    private static void awaitSynchronizedAndIdentical(TwoNodes.Pair pair, LockstepDataSource ds) {
        await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(200)).ignoreExceptions()
                .untilAsserted(() -> {
                    assertThat(record(pair).state()).isEqualTo(MirroringState.SYNCHRONIZED);
                    assertThat(ds.partnership().verify().identical()).isTrue();
                });
    }

    private static void assertAcknowledgedOnBoth(TwoNodes.Pair pair, Set<Long> acknowledged) throws SQLException {
        try (Connection a = pair.principal(); Connection b = pair.mirror()) {
            assertThat(new HashSet<>(Writers.ids(a))).containsAll(acknowledged);
            assertThat(new HashSet<>(Writers.ids(b))).containsAll(acknowledged);
            assertThat(lockstepPrepared(a)).isEmpty();
            assertThat(lockstepPrepared(b)).isEmpty();
        }
    }

    private static PartnershipRecord record(TwoNodes.Pair pair) throws SQLException {
        return witness.store().read(pair.partnership()).record();
    }
}
