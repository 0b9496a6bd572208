package dev.lockstep.it;

import dev.lockstep.Failover;
import dev.lockstep.LockstepConfig;
import dev.lockstep.LockstepDataSource;
import dev.lockstep.NodeConfig;
import dev.lockstep.core.MirroringState;
import dev.lockstep.core.OperatingMode;
import dev.lockstep.core.PartnerHealth;
import dev.lockstep.core.PartnershipRecord;
import dev.lockstep.witness.WitnessStore;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import java.util.Set;

import static dev.lockstep.it.TwoNodes.lockstepPrepared;
import static dev.lockstep.it.TwoNodes.rows;
import static dev.lockstep.it.TwoNodes.value;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/** Promotion of the mirror (I5) and demotion of the returning principal, with a real witness. */
class FailoverTest extends OnTwoNodes {

    private static final Duration PARTNER_TIMEOUT = Duration.ofSeconds(2);
    private static Witness witnessServer;
    private static WitnessStore witness;

    @BeforeAll
    static void startWitness() throws SQLException {
        witnessServer = Witness.start();
        witness = witnessServer.store();
    }

    @AfterAll
    static void stopWitness() {
        witnessServer.close();
    }

    private static void register(TwoNodes.Pair pair) throws SQLException {
        witness.create(new PartnershipRecord(pair.partnership(), 1, "node-a", "node-b", MirroringState.SYNCHRONIZED,
                OperatingMode.HIGH_SAFETY_AUTOMATIC_FAILOVER), "test");
    }

    @Test
    void principalKilledUnderLoadIsReplacedAndEveryAcknowledgedTransactionSurvives() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("killed");
        register(pair);
        LockstepConfig config = pair.config().build();
        Set<Long> acknowledged;
        try (LockstepDataSource ds = LockstepDataSource.start(config)) {
            assertThat(TwoNodes.acknowledged(ds, "CREATE TABLE t (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")).isTrue();
            try (Writers writers = Writers.start(ds, 4)) {
                await().atMost(Duration.ofSeconds(30)).until(() -> writers.count() >= 200);
                nodes.a().kill();
                writers.stop();
                acknowledged = writers.acknowledged();
            }
        }
        try {
            NodeConfig mirror = config.mirror();
            // Refused (55000) until nobody has reached the principal for the partner timeout.
            PartnershipRecord promoted = await().atMost(Duration.ofSeconds(30)).ignoreExceptions()
                    .until(() -> Failover.promoteMirror(witness, pair.partnership(), mirror, PartnerHealth.FAILED,
                            PARTNER_TIMEOUT, Duration.ofSeconds(2), "test-coordinator"), r -> r != null);
            assertThat(promoted.epoch()).isEqualTo(2);
            assertThat(promoted.principal()).isEqualTo("node-b");
            assertThat(witness.read(pair.partnership()).record()).isEqualTo(promoted);
            try (Connection b = pair.mirror()) {
                assertThat(rows(b, "SELECT role, epoch FROM lockstep.node_state")).containsExactly(List.of("principal", 2L));
                assertThat(lockstepPrepared(b)).isEmpty();
                // I1: nothing acknowledged is lost.
                assertThat(Writers.ids(b)).containsAll(acknowledged);
            }
            // Promoting again is refused: the record has moved on.
            assertThatThrownBy(() -> Failover.promoteMirror(witness, pair.partnership(), mirror, PartnerHealth.FAILED,
                    PARTNER_TIMEOUT, Duration.ofSeconds(2), "late")).isInstanceOf(SQLException.class)
                    .hasMessageContaining("not the mirror");
        } finally {
            nodes.a().restart();
        }
        // The old principal returns: it becomes mirror of epoch 2 and never principal again.
        Failover.demoteReturningPrincipal(witness, pair.partnership(), config.principal(), config.mirror(), Duration.ofSeconds(2));
        try (Connection a = pair.principal(); Connection b = pair.mirror()) {
            assertThat(rows(a, "SELECT role, epoch FROM lockstep.node_state")).containsExactly(List.of("mirror", 2L));
            assertThat(lockstepPrepared(a)).isEmpty();
            // It holds no committed transaction that the new principal lacks.
            assertThat(rows(b, "SELECT id FROM t ORDER BY id")).containsAll(rows(a, "SELECT id FROM t ORDER BY id"));
            assertThat(value(a, "SELECT count(*) FROM t")).isEqualTo(value(b, "SELECT count(*) FROM t"));
        }
        // A coordinator configured with the old roles learns the new ones from the nodes: it
        // never serves from the old principal.
        try (LockstepDataSource configuredWithOldRoles = LockstepDataSource.start(config)) {
            assertThat(configuredWithOldRoles.partnership().status().principal()).isEqualTo("node-b");
            assertThat(configuredWithOldRoles.partnership().status().epoch()).isEqualTo(2);
        }
        // With the roles swapped, the partnership serves at epoch 2 and the mirror catches up.
        LockstepConfig swapped = pair.config().principal(config.mirror()).mirror(config.principal()).build();
        try (LockstepDataSource ds = LockstepDataSource.start(swapped); Connection c = ds.getConnection();
             Statement st = c.createStatement()) {
            st.executeUpdate("INSERT INTO t (id) VALUES (-1)");
            // Node-a came back behind (DISCONNECTED): the coordinator catches it up by itself.
            await().atMost(Duration.ofSeconds(30)).until(() -> ds.partnership().verify().identical());
        }
    }

    /** A fault injected into the principal and its repair. */
    private interface Fault {
        void run() throws Exception;
    }

    /**
     * The whole path with a running data source: the principal is hit by the fault under 4
     * writers, the coordinator's monitor promotes the mirror, new commits go to it (exposed,
     * under the witness's lease), and once repaired the old principal is made a mirror of the
     * new epoch, holding nothing the new principal lacks.
     */
    private void failsOverUnderLoad(String partnership, Fault fault, Fault repair) throws Exception {
        TwoNodes.Pair pair = nodes.newPair(partnership);
        LockstepConfig config = pair.config().witness(witnessServer.config()).partnerTimeout(PARTNER_TIMEOUT)
                .heartbeatInterval(Duration.ofMillis(200)).build();
        try (LockstepDataSource ds = LockstepDataSource.start(config)) {
            assertThat(TwoNodes.acknowledged(ds, "CREATE TABLE t (id bigint PRIMARY KEY)")).isTrue();
            try (Writers writers = Writers.start(ds, 4)) {
                await().atMost(Duration.ofSeconds(30)).until(() -> writers.count() >= 200);
                fault.run();
                try {
                    await().atMost(Duration.ofSeconds(60)).until(() -> witness.read(pair.partnership()).record().epoch() == 2);
                    PartnershipRecord after = witness.read(pair.partnership()).record();
                    assertThat(after.principal()).isEqualTo("node-b");
                    assertThat(after.state()).isEqualTo(MirroringState.DISCONNECTED);
                    int atFailover = writers.count();
                    await().atMost(Duration.ofSeconds(60)).until(() -> writers.count() >= atFailover + 100);
                } finally {
                    repair.run();
                }
                // Writers blocked on the old principal resume now; none of them may commit there alone.
                await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(250)).until(() -> {
                    try (Connection a = pair.principal()) {
                        return rows(a, "SELECT role, epoch FROM lockstep.node_state").equals(List.of(List.of("mirror", 2L)));
                    }
                });
                writers.stop();
                try (Connection a = pair.principal(); Connection b = pair.mirror()) {
                    assertThat(Writers.ids(b)).containsAll(writers.acknowledged());
                    assertThat(Writers.ids(b)).containsAll(Writers.ids(a));
                    assertThat(lockstepPrepared(a)).isEmpty();
                    assertThat(rows(b, "SELECT role, epoch FROM lockstep.node_state")).containsExactly(List.of("principal", 2L));
                }
            }
        }
        assertThat(witness.history(pair.partnership())).extracting(WitnessStore.Transition::newState)
                .containsSubsequence(MirroringState.SYNCHRONIZED, MirroringState.PENDING_FAILOVER, MirroringState.DISCONNECTED);
        // A coordinator still acting at epoch 1 is fenced by the old principal.
        try (Connection stale = java.sql.DriverManager.getConnection(nodes.a().jdbcUrl(pair.dbA()) + "?options=-c%20lockstep.epoch=1",
                nodes.a().user(), nodes.a().password()); Statement st = stale.createStatement()) {
            assertThatThrownBy(() -> st.executeUpdate("INSERT INTO t VALUES (-1)"))
                    .isInstanceOfSatisfying(SQLException.class, e -> assertThat(e.getSQLState()).isEqualTo("25006"))
                    .hasMessageContaining("mirror");
        }
    }

    @Test
    void aRunningDataSourceFailsOverByItselfWhenThePrincipalIsKilled() throws Exception {
        failsOverUnderLoad("auto", () -> nodes.a().kill(), () -> nodes.a().restart());
    }

    /** Frozen past the partner timeout: failover; thawed, the old principal cannot acknowledge a commit. */
    @Test
    void aFrozenPrincipalIsReplacedAndAfterThawItAcknowledgesNothing() throws Exception {
        failsOverUnderLoad("frozen", () -> nodes.a().freeze(), () -> nodes.a().thaw());
    }

    /** Two coordinators (separate data sources) lose the principal: exactly one promotes, both follow. */
    @Test
    void twoCoordinatorsRaceForTheFailoverAndExactlyOneWins() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("two");
        LockstepConfig first = pair.config().witness(witnessServer.config()).partnerTimeout(PARTNER_TIMEOUT)
                .heartbeatInterval(Duration.ofMillis(200)).coordinatorId("first").build();
        LockstepConfig second = first.toBuilder().coordinatorId("second").build();
        try (LockstepDataSource one = LockstepDataSource.start(first); LockstepDataSource two = LockstepDataSource.start(second)) {
            assertThat(TwoNodes.acknowledged(one, "CREATE TABLE t (id bigint PRIMARY KEY)")).isTrue();
            try (Writers w1 = Writers.start(one, 2); Writers w2 = Writers.start(two, 2)) {
                await().atMost(Duration.ofSeconds(30)).until(() -> w1.count() + w2.count() >= 200);
                try {
                    nodes.a().kill();
                    await().atMost(Duration.ofSeconds(60)).until(() ->
                            one.partnership().status().epoch() == 2 && two.partnership().status().epoch() == 2);
                    int c1 = w1.count();
                    int c2 = w2.count();
                    await().atMost(Duration.ofSeconds(60)).until(() -> w1.count() > c1 + 20 && w2.count() > c2 + 20);
                    w1.stop();
                    w2.stop();
                } finally {
                    nodes.a().restart();
                }
                try (Connection b = pair.mirror()) {
                    assertThat(Writers.ids(b)).containsAll(w1.acknowledged()).containsAll(w2.acknowledged());
                }
            }
        }
        List<WitnessStore.Transition> history = witness.history(pair.partnership());
        assertThat(history).filteredOn(t -> t.newState() == MirroringState.PENDING_FAILOVER).hasSize(1);
        assertThat(history).filteredOn(t -> t.newEpoch() == 2 && t.newState() == MirroringState.DISCONNECTED).hasSize(1);
    }

    /** A coordinator that took the record to PENDING_FAILOVER and crashed: another completes the change. */
    @Test
    void aRoleChangeLeftPendingByACrashedCoordinatorIsCompletedByAnother() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("pending");
        LockstepConfig config = pair.config().witness(witnessServer.config()).partnerTimeout(PARTNER_TIMEOUT)
                .heartbeatInterval(Duration.ofMillis(200)).build();
        try (LockstepDataSource ds = LockstepDataSource.start(config)) {
            assertThat(TwoNodes.acknowledged(ds, "CREATE TABLE t (id bigint PRIMARY KEY)")).isTrue();
            assertThat(TwoNodes.acknowledged(ds, "INSERT INTO t VALUES (1)")).isTrue();
            PartnershipRecord current = witness.read(pair.partnership()).record();
            assertThat(witness.transition(current, current.withState(MirroringState.PENDING_FAILOVER), null,
                    "promotion by a coordinator that then crashed", "ghost", MirroringState.DISCONNECTED)).isTrue();
            // While it is pending, writes are refused.
            await().atMost(Duration.ofSeconds(10)).until(() -> !TwoNodes.acknowledged(ds, "INSERT INTO t VALUES (2)"));
            await().atMost(Duration.ofSeconds(60)).until(() -> witness.read(pair.partnership()).record().epoch() == 2);
            PartnershipRecord after = witness.read(pair.partnership()).record();
            assertThat(after.principal()).isEqualTo("node-b");
            assertThat(after.state()).isEqualTo(MirroringState.DISCONNECTED);
            await().atMost(Duration.ofSeconds(30)).until(() -> TwoNodes.acknowledged(ds, "INSERT INTO t VALUES (3)"));
        }
        try (Connection a = pair.principal(); Connection b = pair.mirror()) {
            assertThat(rows(a, "SELECT role, epoch FROM lockstep.node_state")).containsExactly(List.of("mirror", 2L));
            assertThat(rows(b, "SELECT role, epoch FROM lockstep.node_state")).containsExactly(List.of("principal", 2L));
            assertThat(value(b, "SELECT count(*) FROM t WHERE id IN (1, 3)")).isEqualTo(2L);
        }
        assertThat(witness.history(pair.partnership())).extracting(WitnessStore.Transition::reason)
                .contains("pending role change completed");
        assertThatThrownBy(() -> witness.transition(witness.read(pair.partnership()).record(),
                witness.read(pair.partnership()).record().withState(MirroringState.PENDING_FAILOVER), null, "no target", "test"))
                .isInstanceOfSatisfying(SQLException.class, e -> assertThat(e.getSQLState()).isEqualTo("22023"));
    }

    @Test
    void plannedFailoverAndBackUnderLoadLosesNothing() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("plannedload");
        LockstepConfig config = pair.config().witness(witnessServer.config()).partnerTimeout(PARTNER_TIMEOUT)
                .heartbeatInterval(Duration.ofMillis(200)).build();
        try (LockstepDataSource ds = LockstepDataSource.start(config)) {
            assertThat(TwoNodes.acknowledged(ds, "CREATE TABLE t (id bigint PRIMARY KEY)")).isTrue();
            try (Writers writers = Writers.start(ds, 4)) {
                for (String next : new String[] {"node-b", "node-a"}) {
                    int before = writers.count();
                    await().atMost(Duration.ofSeconds(30)).until(() -> writers.count() >= before + 100);
                    // Running transactions may hold the role lock past the call timeout: the change is then
                    // abandoned with nothing changed (55P03), and tried again.
                    await().atMost(Duration.ofSeconds(60)).ignoreExceptions()
                            .until(() -> ds.partnership().failover(next).principal().equals(next));
                }
                int after = writers.count();
                await().atMost(Duration.ofSeconds(30)).until(() -> writers.count() >= after + 100);
                writers.stop();
                assertThat(ds.partnership().status().epoch()).isEqualTo(3);
                assertThat(ds.partnership().verify().identical()).isTrue();
                try (Connection a = pair.principal(); Connection b = pair.mirror()) {
                    assertThat(Writers.ids(a)).containsAll(writers.acknowledged());
                    assertThat(Writers.ids(b)).containsExactlyInAnyOrderElementsOf(Writers.ids(a));
                }
            }
        }
    }

    @Test
    void plannedFailoverSwapsRolesWithNoLossAndFailsBackWithTheSameCall() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("planned");
        LockstepConfig config = pair.config().witness(witnessServer.config()).partnerTimeout(PARTNER_TIMEOUT)
                .heartbeatInterval(Duration.ofMillis(200)).build();
        try (LockstepDataSource ds = LockstepDataSource.start(config)) {
            assertThat(TwoNodes.acknowledged(ds, "CREATE TABLE t (id int PRIMARY KEY)")).isTrue();
            for (int i = 1; i <= 50; i++) {
                assertThat(TwoNodes.acknowledged(ds, "INSERT INTO t VALUES (" + i + ")")).isTrue();
            }
            PartnershipRecord swapped = ds.partnership().failover("node-b");
            assertThat(swapped.epoch()).isEqualTo(2);
            assertThat(swapped.principal()).isEqualTo("node-b");
            assertThat(swapped.state()).isEqualTo(MirroringState.SYNCHRONIZED);
            assertThat(ds.partnership().status().principal()).isEqualTo("node-b");
            await().atMost(Duration.ofSeconds(20)).until(() -> TwoNodes.acknowledged(ds, "INSERT INTO t VALUES (51)"));
            try (Connection a = pair.principal(); Connection b = pair.mirror()) {
                assertThat(rows(a, "SELECT role, epoch FROM lockstep.node_state")).containsExactly(List.of("mirror", 2L));
                assertThat(rows(b, "SELECT role, epoch FROM lockstep.node_state")).containsExactly(List.of("principal", 2L));
                assertThat(value(a, "SELECT count(*) FROM t")).isEqualTo(51L);
            }
            assertThat(ds.partnership().verify().identical()).isTrue();
            assertThatThrownBy(() -> ds.partnership().failover("node-b")).isInstanceOf(SQLException.class)
                    .hasMessageContaining("already the principal")
                    .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("55000"));
            PartnershipRecord back = ds.partnership().failover("node-a");
            assertThat(back.epoch()).isEqualTo(3);
            assertThat(back.principal()).isEqualTo("node-a");
            await().atMost(Duration.ofSeconds(20)).until(() -> TwoNodes.acknowledged(ds, "INSERT INTO t VALUES (52)"));
            assertThat(ds.partnership().verify().identical()).isTrue();
            assertThat(ds.partnership().status().epoch()).isEqualTo(3);
        }
        try (Connection a = pair.principal(); Connection b = pair.mirror()) {
            assertThat(value(a, "SELECT count(*) FROM t")).isEqualTo(52L);
            assertThat(value(b, "SELECT count(*) FROM t")).isEqualTo(52L);
        }
        assertThat(witness.history(pair.partnership())).extracting(WitnessStore.Transition::reason)
                .contains("planned failover: node-b is principal", "planned failover: node-a is principal");
    }

    @Test
    void noPromotionWhileACoordinatorStillReachesThePrincipal() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("seen");
        register(pair);
        assertThat(witness.principalSeen(pair.partnership(), 1, "another-coordinator")).isTrue();
        NodeConfig mirror = pair.config().build().mirror();
        assertThatThrownBy(() -> Failover.promoteMirror(witness, pair.partnership(), mirror, PartnerHealth.FAILED,
                Duration.ofSeconds(30), Duration.ofSeconds(2), "cut-off")).isInstanceOf(SQLException.class)
                .hasMessageContaining("CUT_OFF_FROM_PRINCIPAL")
                .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("55000"));
        assertThatThrownBy(() -> Failover.promoteMirror(witness, pair.partnership(), mirror, PartnerHealth.SUSPECT,
                Duration.ofMillis(1), Duration.ofSeconds(2), "impatient")).hasMessageContaining("AWAIT_PARTNER_TIMEOUT");
        assertThat(witness.read(pair.partnership()).record().epoch()).isEqualTo(1);
        assertThat(witness.history(pair.partnership())).hasSize(1);
    }
}
