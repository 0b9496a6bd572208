package dev.lockstep.it;

import dev.lockstep.LockstepConfig;
import dev.lockstep.LockstepDataSource;
import dev.lockstep.NodeConfig;
import dev.lockstep.PartnershipStatus;
import dev.lockstep.core.MirroringState;
import dev.lockstep.core.PartnerHealth;
import dev.lockstep.core.QuorumRules;
import dev.lockstep.witness.WitnessStore;
import org.junit.jupiter.api.Test;

import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.Future;
import java.util.concurrent.Executors;
import java.util.concurrent.ExecutorService;
import java.util.List;
import java.util.Set;

import static dev.lockstep.it.TwoNodes.value;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/** Rows of the quorum table of DESIGN.md with a running data source, real servers and cut links. */
class QuorumTest extends OnTwoNodesAndWitness {


    private static LockstepDataSource start(TwoNodes.Pair pair) throws SQLException {
        return start(pair.config().witness(witness.config()).partnerTimeout(Duration.ofSeconds(2))
                .heartbeatInterval(Duration.ofMillis(200)).build());
    }

    private static LockstepDataSource start(LockstepConfig config) throws SQLException {
        LockstepDataSource ds = LockstepDataSource.start(config);
        try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE t (id int PRIMARY KEY)");
        }
        return ds;
    }

    /**
     * Writes row {@code id}; true once acknowledged. An earlier attempt cut in its mirror step
     * (40003) may have committed the row already, hence ON CONFLICT DO NOTHING.
     */
    private static boolean write(LockstepDataSource ds, int id) {
        return TwoNodes.acknowledged(ds, "INSERT INTO t VALUES (" + id + ") ON CONFLICT DO NOTHING");
    }

    private static MirroringState state(TwoNodes.Pair pair) throws SQLException {
        return witness.store().read(pair.partnership()).record().state();
    }

    @Test
    void mirrorLostWithTheWitnessConnected_principalRunsExposedAndTheWitnessRecordsDisconnected() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("mirrorlost");
        try (LockstepDataSource ds = start(pair)) {
            assertThat(write(ds, 1)).isTrue();
            nodes.b().proxy().partition();
            try {
                await().atMost(Duration.ofSeconds(30)).until(() -> state(pair) == MirroringState.DISCONNECTED);
                await().atMost(Duration.ofSeconds(30)).until(() -> write(ds, 2));
                assertThat(write(ds, 3)).isTrue();
                PartnershipStatus status = ds.partnership().status();
                assertThat(status.mirrorHealth()).isEqualTo(PartnerHealth.FAILED);
                assertThat(status.principalHealth()).isEqualTo(PartnerHealth.UP);
                assertThat(status.action()).isEqualTo(QuorumRules.Action.RUN_EXPOSED);
                assertThat(status.state()).isEqualTo(MirroringState.DISCONNECTED);
                assertThat(status.automaticFailoverArmed()).isFalse();
                // A commit cut in its mirror step stays prepared only until the grace passes: with
                // the mirror written off at the witness, it commits with the principal.
                await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> {
                    try (Connection p = pair.principal()) {
                        assertThat(TwoNodes.lockstepPrepared(p)).isEmpty();
                    }
                });
            } finally {
                nodes.b().proxy().heal();
            }
            assertThat(witness.store().read(pair.partnership()).record().epoch()).isEqualTo(1);
        }
        try (Connection p = pair.principal(); Connection m = pair.mirror()) {
            assertThat(value(p, "SELECT count(*) FROM t")).isEqualTo(3L);
            assertThat(value(m, "SELECT count(*) FROM t")).isEqualTo(1L);
            // The journal keeps what the mirror lacks, for catch-up.
            assertThat((Long) value(p, "SELECT count(*) FROM lockstep.journal WHERE epoch > 0"))
                    .isGreaterThan((Long) value(m, "SELECT count(*) FROM lockstep.journal WHERE epoch > 0"));
        }
    }

    /**
     * Once the witness records the mirror lost, the coordinator that recorded it commits exposed
     * at once, not a heartbeat later (commits meanwhile would still be sent to the lost mirror).
     * A long heartbeat (and a long call deadline, see below) makes the difference visible.
     */
    @Test
    void theCoordinatorThatRecordsTheMirrorLostCommitsExposedWithoutWaitingAHeartbeat() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("exposedatonce");
        // A short connect timeout: a write caught between the witness's record and the switch
        // (a few milliseconds) fails fast at the mirror instead of waiting out the default 5 s.
        try (LockstepDataSource ds = start(pair.config().witness(witness.config()).partnerTimeout(Duration.ofSeconds(9))
                .heartbeatInterval(Duration.ofSeconds(3)).connectTimeout(Duration.ofMillis(300))
                // A commit that fails at the mirror has the monitor look again a quarter of this
                // later: long enough not to stand in for the switch under test.
                .remoteCallTimeout(Duration.ofSeconds(10)).inDoubtGrace(Duration.ofSeconds(60)).build())) {
            assertThat(write(ds, 1)).isTrue();
            nodes.b().proxy().partition();
            try {
                await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(20))
                        .until(() -> state(pair) == MirroringState.DISCONNECTED);
                await().atMost(Duration.ofMillis(1500)).pollInterval(Duration.ofMillis(100)).until(() -> write(ds, 2));
            } finally {
                nodes.b().proxy().heal();
            }
        }
        try (Connection p = pair.principal()) {
            assertThat(value(p, "SELECT count(*) FROM t")).isEqualTo(2L);
        }
    }

    /**
     * Another coordinator changes the mirroring state (suspends mirroring, then resumes it). This
     * coordinator's next commit is refused with 40001 by the principal, whose state its view no
     * longer matches; the refusal has it look again at once, so its commits go through again well
     * within its long heartbeat instead of all being refused until the next one. Four changes, so
     * that a heartbeat falling by chance right after a refusal cannot pass the test by itself.
     */
    @Test
    void aCommitRefusedForAStaleViewHasTheCoordinatorLookAgainAtOnce() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("staleview");
        LockstepConfig slow = pair.config().witness(witness.config()).partnerTimeout(Duration.ofSeconds(60))
                .heartbeatInterval(Duration.ofSeconds(20)).build();
        // The other coordinator beats often, so that its catch-ups after each resume are quick.
        LockstepConfig quick = pair.config().witness(witness.config()).partnerTimeout(Duration.ofSeconds(2))
                .heartbeatInterval(Duration.ofMillis(200)).build();
        try (LockstepDataSource a = start(slow); LockstepDataSource b = LockstepDataSource.start(quick)) {
            assertThat(write(a, 1)).isTrue();
            AtomicInteger id = new AtomicInteger(1);
            for (int round = 0; round < 2; round++) {
                assertThat(b.partnership().suspend().state()).isEqualTo(MirroringState.SUSPENDED);
                await().atMost(Duration.ofSeconds(3)).pollInterval(Duration.ofMillis(50)).until(() -> write(a, id.incrementAndGet()));
                assertThat(b.partnership().resume().state()).isEqualTo(MirroringState.SYNCHRONIZING);
                await().atMost(Duration.ofSeconds(90)).pollInterval(Duration.ofMillis(50)).until(() -> state(pair) == MirroringState.SYNCHRONIZED);
                await().atMost(Duration.ofSeconds(3)).pollInterval(Duration.ofMillis(50)).until(() -> write(a, id.incrementAndGet()));
            }
            assertThat(a.partnership().verify().identical()).isTrue();
        }
    }

    /**
     * A commit whose mirror link breaks during apply is left prepared on the principal (40003).
     * Its own coordinator knows no commit works on it any longer: once the mirror is written off
     * at the witness, it is committed with the principal at the next resolver pass rather than
     * after the in-doubt grace, so its rows are not held locked for the whole grace.
     */
    @Test
    void aCommitThisCoordinatorGaveUpOnIsSettledWithoutWaitingForTheGrace() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("gaveup");
        LockstepConfig config = pair.config().witness(witness.config()).partnerTimeout(Duration.ofSeconds(2))
                .heartbeatInterval(Duration.ofMillis(200)).inDoubtGrace(Duration.ofMinutes(10)).build();
        try (LockstepDataSource ds = start(config)) {
            try (Connection m = pair.mirror(); Statement ms = m.createStatement()) {
                ms.execute("SET lockstep.internal = on");
                ms.execute("CREATE FUNCTION slowly_true() RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(2); RETURN true; END $$");
                ms.execute("ALTER TABLE t ADD CONSTRAINT checked_slowly CHECK (slowly_true())");
            }
            ExecutorService client = Executors.newSingleThreadExecutor();
            Future<SQLException> attempt = TwoNodes.attempt(client, ds, "INSERT INTO t VALUES (1)");
            TwoNodes.awaitApplyUnderWay(pair);
            nodes.b().proxy().partition();
            try {
                SQLException failure = attempt.get(30, TimeUnit.SECONDS);
                assertThat((Throwable) failure).isNotNull();
                assertThat(failure.getSQLState()).isEqualTo("40003");
                await().atMost(Duration.ofSeconds(30)).until(() -> state(pair) == MirroringState.DISCONNECTED);
                await().atMost(Duration.ofSeconds(20)).untilAsserted(() -> {
                    try (Connection p = pair.principal()) {
                        assertThat(TwoNodes.lockstepPrepared(p)).isEmpty();
                    }
                });
                // Committed with the principal, as an exposed commit; its row is free again.
                assertThat(TwoNodes.acknowledged(ds, "UPDATE t SET id = 2 WHERE id = 1")).isTrue();
            } finally {
                nodes.b().proxy().heal();
                client.shutdownNow();
            }
        }
        try (Connection p = pair.principal()) {
            assertThat(value(p, "SELECT id FROM t")).isEqualTo(2);
        }
    }

    @Test
    void coordinatorCutOffFromALivePrincipal_noFailoverWhileAnotherCoordinatorReachesIt() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("cutoff");
        LockstepConfig viaProxy = pair.config().witness(witness.config()).partnerTimeout(Duration.ofSeconds(2))
                .heartbeatInterval(Duration.ofMillis(200)).coordinatorId("cut-off").build();
        // The second coordinator reaches the principal directly, around the proxy that is cut.
        LockstepConfig direct = viaProxy.toBuilder().coordinatorId("connected")
                .principal(NodeConfig.of("node-a", nodes.a().directJdbcUrl(pair.dbA()), nodes.a().user(), nodes.a().password()))
                .build();
        try (LockstepDataSource cutOff = start(viaProxy); LockstepDataSource connected = LockstepDataSource.start(direct)) {
            nodes.a().proxy().partition();
            try {
                await().atMost(Duration.ofSeconds(30))
                        .until(() -> cutOff.partnership().status().action() == QuorumRules.Action.CUT_OFF_FROM_PRINCIPAL);
                // Three partner timeouts pass without a promotion, and the other coordinator keeps committing in lockstep.
                await().during(Duration.ofSeconds(6)).atMost(Duration.ofSeconds(10))
                        .until(() -> witness.store().read(pair.partnership()).record().epoch() == 1);
                assertThat(write(connected, 1)).isTrue();
            } finally {
                nodes.a().proxy().heal();
            }
        }
        try (Connection p = pair.principal(); Connection m = pair.mirror()) {
            assertThat(value(p, "SELECT count(*) FROM t")).isEqualTo(1L);
            assertThat(value(m, "SELECT count(*) FROM t")).isEqualTo(1L);
        }
    }

    @Test
    void principalLostWhileTheMirrorIsNotSynchronized_noAutomaticFailover_onlyForcedService() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("forced");
        try (LockstepDataSource ds = start(pair)) {
            assertThat(write(ds, 1)).isTrue();
            assertThatThrownBy(() -> ds.partnership().forceService(true)).isInstanceOf(SQLException.class)
                    .hasMessageContaining("not lost");
            nodes.b().proxy().partition();
            try {
                await().atMost(Duration.ofSeconds(30)).until(() -> state(pair) == MirroringState.DISCONNECTED);
                await().atMost(Duration.ofSeconds(30)).until(() -> write(ds, 2));
            } finally {
                nodes.b().proxy().heal();
            }
            nodes.a().kill();
            try {
                await().atMost(Duration.ofSeconds(30))
                        .until(() -> ds.partnership().status().action() == QuorumRules.Action.NO_AUTOMATIC_FAILOVER);
                await().during(Duration.ofSeconds(5)).atMost(Duration.ofSeconds(10))
                        .until(() -> witness.store().read(pair.partnership()).record().epoch() == 1);
                assertThatThrownBy(() -> ds.partnership().forceService(false)).hasMessageContaining("consent");
                await().atMost(Duration.ofSeconds(30)).ignoreExceptions()
                        .until(() -> ds.partnership().forceService(true).epoch() == 2);
                assertThat(state(pair)).isEqualTo(MirroringState.SUSPENDED);
                // The mirror serves as principal; what the lost principal committed alone (row 2) is lost, as consented.
                await().atMost(Duration.ofSeconds(30)).until(() -> write(ds, 3));
            } finally {
                nodes.a().restart();
            }
        }
        try (Connection m = pair.mirror()) {
            assertThat(TwoNodes.rows(m, "SELECT id FROM t ORDER BY id")).containsExactly(List.of(1), List.of(3));
            assertThat(TwoNodes.rows(m, "SELECT role, epoch FROM lockstep.node_state")).containsExactly(List.of("principal", 2L));
        }
        assertThat(witness.store().history(pair.partnership())).extracting(WitnessStore.Transition::reason)
                .contains("forced service with data loss accepted");
    }

    @Test
    void witnessKilled_writesContinueInLockstep_thenPrincipalKilled_noAutomaticFailover() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("witnesskilled");
        try (LockstepDataSource ds = start(pair)) {
            witness.node().kill();
            try {
                for (int i = 1; i <= 10; i++) {
                    assertThat(write(ds, i)).isTrue();
                }
                await().atMost(Duration.ofSeconds(30)).until(() -> ds.partnership().status().witnessHealth() == PartnerHealth.FAILED);
                nodes.a().kill();
                try {
                    await().atMost(Duration.ofSeconds(30))
                            .until(() -> ds.partnership().status().action() == QuorumRules.Action.NO_AUTOMATIC_FAILOVER);
                    await().during(Duration.ofSeconds(5)).atMost(Duration.ofSeconds(10))
                            .until(() -> ds.partnership().status().epoch() == 1);
                    try (Connection m = pair.mirror()) {
                        assertThat(TwoNodes.rows(m, "SELECT role, epoch FROM lockstep.node_state")).containsExactly(List.of("mirror", 1L));
                        assertThat(value(m, "SELECT count(*) FROM t")).isEqualTo(10L);
                    }
                } finally {
                    nodes.a().restart();
                }
            } finally {
                witness.node().restart();
            }
        }
        try (Connection p = pair.principal()) {
            assertThat(value(p, "SELECT count(*) FROM t")).isEqualTo(10L);
        }
    }

    @Test
    void badWitnessSettingsFailWithClearErrors() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("badwitness");
        String empty = witness.node().createDatabase("nowitness");
        LockstepConfig noSchema = pair.config().installSchema(false)
                .witness(NodeConfig.of("witness", witness.node().jdbcUrl(empty), witness.node().user(), "x")).build();
        try (LockstepDataSource installed = pair.start()) {
            assertThat(installed.partnership().epoch()).isEqualTo(1);
        }
        assertThatThrownBy(() -> LockstepDataSource.start(noSchema)).isInstanceOfSatisfying(SQLException.class,
                e -> assertThat(e.getSQLState()).isEqualTo("55000")).hasMessageContaining("witness witness has no Lockstep witness schema");
        LockstepConfig wrongUser = pair.config()
                .witness(NodeConfig.of("witness", witness.config().jdbcUrl(), "no_such_role", "x")).build();
        assertThatThrownBy(() -> LockstepDataSource.start(wrongUser)).isInstanceOf(SQLException.class)
                .hasMessageContaining("witness witness").hasMessageContaining("no_such_role");
    }

    /**
     * An exposed commit whose COMMIT returns only after the principal's lease at the witness ran
     * out is not acknowledged (40003): by then a forced service of the mirror may have begun, and
     * two principals must never both accept a write. The COMMIT is held after it is durable by a
     * synchronous standby that does not exist, the link to the witness goes silent, and once the
     * witness has been silent for the partner timeout (twice the lease) the standby requirement is
     * lifted, so the COMMIT returns.
     */
    @Test
    void exposedCommitReturningAfterTheLeaseRanOut_isNotAcknowledged() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("stalledcommit");
        ExecutorService writer = Executors.newSingleThreadExecutor();
        String held;
        try (LockstepDataSource ds = start(pair)) {
            assertThat(write(ds, 1)).isTrue();
            nodes.b().proxy().partition();
            try {
                await().atMost(Duration.ofSeconds(30)).until(() -> state(pair) == MirroringState.DISCONNECTED);
                await().atMost(Duration.ofSeconds(30)).until(() -> write(ds, 2));
                holdCommitsAfterTheyAreDurable(true);
                // A commit that runs before its backend has read the new setting is acknowledged at
                // once: the writer goes on to the next row until one is held.
                Future<String> outcome = writer.submit(() -> {
                    for (int id = 3; id < 1_000; id++) {
                        try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
                            st.executeUpdate("INSERT INTO t VALUES (" + id + ")");
                        } catch (SQLException e) {
                            return id + " " + e.getSQLState() + " " + e.getMessage();
                        }
                    }
                    return "no commit was held";
                });
                try (Connection a = nodes.a().connectDirect("postgres")) {
                    await().atMost(Duration.ofSeconds(10)).until(() ->
                            (Long) value(a, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'") >= 1);
                }
                witness.node().proxy().blackhole();
                try {
                    await().atMost(Duration.ofSeconds(30)).until(() -> ds.partnership().status().witnessHealth() == PartnerHealth.FAILED);
                    holdCommitsAfterTheyAreDurable(false);
                    held = outcome.get(30, TimeUnit.SECONDS);
                    assertThat(held).matches("(?s)\\d+ 40003 .*").contains("lease");
                } finally {
                    witness.node().proxy().heal();
                }
            } finally {
                holdCommitsAfterTheyAreDurable(false);
                nodes.b().proxy().heal();
                writer.shutdownNow();
            }
            // The transaction did commit on the principal: "not acknowledged" is all the client was told.
            try (Connection p = pair.principal()) {
                assertThat(value(p, "SELECT count(*) FROM t WHERE id = " + held.split(" ")[0])).isEqualTo(1L);
            }
            await().atMost(Duration.ofSeconds(60)).until(() -> state(pair) == MirroringState.SYNCHRONIZED);
        }
    }

    /** Makes every commit on node a wait, once durable, for a synchronous standby that never comes. */
    private static void holdCommitsAfterTheyAreDurable(boolean hold) throws SQLException {
        try (Connection a = nodes.a().connectDirect("postgres"); Statement st = a.createStatement()) {
            st.execute(hold ? "ALTER SYSTEM SET synchronous_standby_names = 'lockstep_test_no_such_standby'"
                    : "ALTER SYSTEM RESET synchronous_standby_names");
            st.execute("SELECT pg_reload_conf()");
        }
    }

    @Test
    void witnessLostWithThePartnersConnected_lockstepContinues() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("witnesslost");
        try (LockstepDataSource ds = start(pair)) {
            witness.node().proxy().partition();
            try {
                for (int i = 1; i <= 20; i++) {
                    assertThat(write(ds, i)).isTrue();
                }
                await().atMost(Duration.ofSeconds(30)).until(() -> ds.partnership().status().witnessHealth() == PartnerHealth.FAILED);
                // The detector sees the cut at once; the monitor decides on its next pass.
                await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> {
                    PartnershipStatus status = ds.partnership().status();
                    assertThat(status.action()).isEqualTo(QuorumRules.Action.LOCKSTEP);
                    assertThat(status.automaticFailoverArmed()).isFalse();
                });
                assertThat(write(ds, 21)).isTrue();
            } finally {
                witness.node().proxy().heal();
            }
        }
        try (Connection p = pair.principal(); Connection m = pair.mirror()) {
            assertThat(value(p, "SELECT count(*) FROM t")).isEqualTo(21L);
            assertThat(value(m, "SELECT count(*) FROM t")).isEqualTo(21L);
        }
        assertThat(state(pair)).isEqualTo(MirroringState.SYNCHRONIZED);
    }

    @Test
    void witnessLostThenMirrorLost_principalStopsAcceptingWrites() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("noquorum");
        try (LockstepDataSource ds = start(pair); Connection reader = ds.getConnection()) {
            assertThat(write(ds, 1)).isTrue();
            witness.node().proxy().partition();
            nodes.b().proxy().partition();
            try {
                java.util.concurrent.atomic.AtomicInteger id = new java.util.concurrent.atomic.AtomicInteger(1);
                await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(300)).untilAsserted(() ->
                        assertThatThrownBy(() -> {
                            try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
                                st.executeUpdate("INSERT INTO t VALUES (" + id.incrementAndGet() + ")");
                            }
                        }).hasMessageContaining("no quorum")
                                .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("25006")));
                // Reading is still served.
                assertThat(value(reader, "SELECT count(*) FROM t")).isEqualTo(1L);
            } finally {
                nodes.b().proxy().heal();
                witness.node().proxy().heal();
            }
            // A commit cut during its mirror step may have stayed prepared (40003); once healed,
            // in-doubt resolution settles it on both nodes alike.
            await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(500)).untilAsserted(() -> {
                try (Connection p = pair.principal(); Connection m = pair.mirror()) {
                    assertThat(TwoNodes.lockstepPrepared(p)).isEmpty();
                    assertThat(TwoNodes.lockstepPrepared(m)).isEmpty();
                    assertThat(TwoNodes.rows(m, "SELECT id FROM t ORDER BY id"))
                            .isEqualTo(TwoNodes.rows(p, "SELECT id FROM t ORDER BY id"));
                }
            });
        }
        // No failover. (Once the witness is back, the mirror may be recorded DISCONNECTED for the
        // moment it was gone; catch-up, the next issue, brings it back to SYNCHRONIZED.)
        WitnessStore.Sighting s = witness.store().read(pair.partnership());
        assertThat(s.record().epoch()).isEqualTo(1);
        assertThat(s.record().principal()).isEqualTo("node-a");
    }

    @Test
    void allConnected_lockstepAndRolesUnchanged() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("allconnected");
        try (LockstepDataSource ds = start(pair)) {
            for (int i = 1; i <= 20; i++) {
                assertThat(write(ds, i)).isTrue();
            }
            // Armed once every node answered its first probe and the monitor has decided once.
            await().atMost(Duration.ofSeconds(30)).until(() -> ds.partnership().status().automaticFailoverArmed()
                    && ds.partnership().status().action() != null);
            PartnershipStatus status = ds.partnership().status();
            assertThat(status.action()).isEqualTo(QuorumRules.Action.LOCKSTEP);
            assertThat(status.state()).isEqualTo(MirroringState.SYNCHRONIZED);
            assertThat(List.of(status.principalHealth(), status.mirrorHealth(), status.witnessHealth()))
                    .containsOnly(PartnerHealth.UP);
            assertThat(status.epoch()).isEqualTo(1);
            assertThat(status.principal()).isEqualTo("node-a");
        }
        try (Connection p = pair.principal(); Connection m = pair.mirror()) {
            assertThat(value(m, "SELECT count(*) FROM t")).isEqualTo(20L);
            assertThat(TwoNodes.rows(m, "SELECT epoch, seq, gid FROM lockstep.journal ORDER BY 1, 2"))
                    .isEqualTo(TwoNodes.rows(p, "SELECT epoch, seq, gid FROM lockstep.journal ORDER BY 1, 2"));
        }
        // No transition beyond the partnership's creation.
        assertThat(witness.store().history(pair.partnership())).extracting(WitnessStore.Transition::newState)
                .containsExactly(MirroringState.SYNCHRONIZED);
    }

    /**
     * The mirror is killed under load: the witness records it DISCONNECTED and the principal
     * commits alone. Then the witness is killed too: the principal has no quorum and refuses
     * writes (25006). Every acknowledged transaction is on the principal.
     */
    @Test
    void mirrorKilledUnderLoad_exposed_thenWitnessKilled_writesRefusedAndNothingAcknowledgedLost() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("mirrorkilled");
        Set<Long> acknowledged;
        try (LockstepDataSource ds = LockstepDataSource.start(pair.config().witness(witness.config())
                .partnerTimeout(Duration.ofSeconds(2)).heartbeatInterval(Duration.ofMillis(200)).build())) {
            assertThat(TwoNodes.acknowledged(ds, "CREATE TABLE t (id bigint PRIMARY KEY)")).isTrue();
            try (Writers writers = Writers.start(ds, 4)) {
                await().atMost(Duration.ofSeconds(30)).until(() -> writers.count() >= 100);
                nodes.b().kill();
                try {
                    await().atMost(Duration.ofSeconds(30)).until(() -> state(pair) == MirroringState.DISCONNECTED);
                    int exposedFrom = writers.count();
                    await().atMost(Duration.ofSeconds(30)).until(() -> writers.count() >= exposedFrom + 100);
                    assertThat(ds.partnership().status().action()).isEqualTo(QuorumRules.Action.RUN_EXPOSED);
                    witness.node().kill();
                    try {
                        await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(200)).untilAsserted(() ->
                                assertThatThrownBy(() -> {
                                    try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
                                        st.executeUpdate("INSERT INTO t VALUES (-1)");
                                    }
                                }).hasMessageContaining("no quorum")
                                        .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("25006")));
                        // Refused for good: nothing more is acknowledged.
                        int refusedAt = writers.count();
                        await().during(Duration.ofSeconds(2)).atMost(Duration.ofSeconds(5))
                                .until(() -> writers.count() == refusedAt);
                        writers.stop();
                        acknowledged = writers.acknowledged();
                    } finally {
                        witness.node().restart();
                    }
                } finally {
                    nodes.b().restart();
                }
            }
        }
        try (Connection p = pair.principal()) {
            assertThat(Writers.ids(p)).containsAll(acknowledged);
            assertThat(Writers.ids(p)).doesNotContain(-1L);
        }
        assertThat(witness.store().read(pair.partnership()).record().epoch()).isEqualTo(1);
    }

    /**
     * Every coordinator that reaches the witness loses the principal (a cut link); one more
     * coordinator still reaches the principal but not the witness. The mirror is promoted; the
     * stale coordinator's commits through the old principal are refused by the new epoch; once
     * healed, the old principal becomes mirror. The journals show one principal per epoch.
     */
    @Test
    void allCoordinatorsCutOffFromALivePrincipal_failoverAndOnePrincipalPerEpoch() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("allcut");
        LockstepConfig cut = pair.config().witness(witness.directConfig()).partnerTimeout(Duration.ofSeconds(2))
                .heartbeatInterval(Duration.ofMillis(200)).coordinatorId("cut").build();
        LockstepConfig stale = cut.toBuilder().coordinatorId("stale").witness(witness.config())
                .principal(NodeConfig.of("node-a", nodes.a().directJdbcUrl(pair.dbA()), nodes.a().user(), nodes.a().password()))
                .build();
        Set<Long> acknowledged = new java.util.HashSet<>();
        try (LockstepDataSource cutOff = LockstepDataSource.start(cut); LockstepDataSource staleDs = LockstepDataSource.start(stale)) {
            assertThat(TwoNodes.acknowledged(cutOff, "CREATE TABLE t (id bigint PRIMARY KEY)")).isTrue();
            try (Writers viaCut = Writers.start(cutOff, 2, 1); Writers viaStale = Writers.start(staleDs, 2, 1_000_000)) {
                await().atMost(Duration.ofSeconds(30)).until(() -> viaCut.count() >= 50 && viaStale.count() >= 50);
                witness.node().proxy().partition();
                nodes.a().proxy().partition();
                try {
                    await().atMost(Duration.ofSeconds(30)).until(() -> witness.store().read(pair.partnership()).record().epoch() == 2);
                    assertThat(witness.store().read(pair.partnership()).record().principal()).isEqualTo("node-b");
                    int before = viaCut.count();
                    await().atMost(Duration.ofSeconds(30)).until(() -> viaCut.count() >= before + 50);
                    // The stale coordinator reaches the old principal, but its mirror now refuses epoch 1.
                    int staleCount = viaStale.count();
                    await().during(Duration.ofSeconds(2)).atMost(Duration.ofSeconds(5)).until(() -> viaStale.count() == staleCount);
                } finally {
                    nodes.a().proxy().heal();
                    witness.node().proxy().heal();
                }
                await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(250)).until(() -> {
                    try (Connection a = pair.principal()) {
                        return TwoNodes.rows(a, "SELECT role, epoch FROM lockstep.node_state").equals(List.of(List.of("mirror", 2L)));
                    }
                });
                viaCut.stop();
                viaStale.stop();
                acknowledged.addAll(viaCut.acknowledged());
                acknowledged.addAll(viaStale.acknowledged());
            }
        }
        try (Connection a = pair.principal(); Connection b = pair.mirror()) {
            assertThat(Writers.ids(b)).containsAll(acknowledged);
            assertThat(Writers.ids(b)).containsAll(Writers.ids(a));
            await().atMost(Duration.ofSeconds(30)).until(() -> TwoNodes.lockstepPrepared(a).isEmpty());
            // One principal per epoch, across both journals (epoch 0 holds in-doubt resolution's bars).
            java.util.Map<Object, java.util.Set<Object>> origins = new java.util.HashMap<>();
            for (Connection c : List.of(a, b)) {
                for (List<Object> row : TwoNodes.rows(c, "SELECT DISTINCT epoch, origin FROM lockstep.journal WHERE epoch > 0")) {
                    origins.computeIfAbsent(row.get(0), e -> new java.util.HashSet<>()).add(row.get(1));
                }
            }
            assertThat(origins).containsOnlyKeys(1L, 2L);
            assertThat(origins.get(1L)).containsExactly("node-a");
            assertThat(origins.get(2L)).containsExactly("node-b");
        }
    }
}
