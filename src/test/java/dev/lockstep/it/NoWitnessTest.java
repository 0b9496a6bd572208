package dev.lockstep.it;

import dev.lockstep.LockstepConfig;
import dev.lockstep.LockstepDataSource;
import dev.lockstep.PartnershipStatus;
import dev.lockstep.core.MirroringState;
import dev.lockstep.core.OperatingMode;
import dev.lockstep.core.PartnerHealth;
import dev.lockstep.core.PartnershipRecord;
import dev.lockstep.core.QuorumRules;
import org.junit.jupiter.api.Test;

import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import java.util.Set;

import static dev.lockstep.it.TwoNodes.rows;
import static dev.lockstep.it.TwoNodes.value;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/**
 * The last row of the quorum table: no witness configured (HIGH_SAFETY). A lost mirror leaves
 * the principal running exposed, recorded on the principal itself; a lost principal is never
 * replaced by itself: failover is manual, as forced service.
 */
class NoWitnessTest extends OnTwoNodes {

    private static LockstepConfig config(TwoNodes.Pair pair) {
        return pair.config().partnerTimeout(Duration.ofSeconds(2)).heartbeatInterval(Duration.ofMillis(200)).build();
    }

    private static boolean write(LockstepDataSource ds, long id) {
        return TwoNodes.acknowledged(ds, "INSERT INTO t VALUES (" + id + ") ON CONFLICT DO NOTHING");
    }

    @Test
    void mirrorLost_principalRunsExposedAndEveryCoordinatorKnows() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("nowitness_exposed");
        LockstepConfig config = config(pair);
        assertThat(config.mode()).isEqualTo(OperatingMode.HIGH_SAFETY);
        try (LockstepDataSource ds = LockstepDataSource.start(config)) {
            assertThat(TwoNodes.acknowledged(ds, "CREATE TABLE t (id bigint PRIMARY KEY)")).isTrue();
            assertThat(write(ds, 1)).isTrue();
            nodes.b().proxy().partition();
            try {
                await().atMost(Duration.ofSeconds(30)).until(() -> write(ds, 2));
                assertThat(write(ds, 3)).isTrue();
                PartnershipStatus status = ds.partnership().status();
                assertThat(status.action()).isEqualTo(QuorumRules.Action.RUN_EXPOSED);
                assertThat(status.state()).isEqualTo(MirroringState.DISCONNECTED);
                assertThat(status.mirrorHealth()).isEqualTo(PartnerHealth.FAILED);
                assertThat(status.automaticFailoverArmed()).isFalse();
                try (Connection p = pair.principal()) {
                    assertThat(value(p, "SELECT mirroring_state FROM lockstep.node_state")).isEqualTo("DISCONNECTED");
                }
            } finally {
                // Holding the catch-up claim keeps the returning mirror behind for the rest of the test.
                holdCatchUpClaim(pair);
                nodes.b().proxy().heal();
            }
            // The mirror is back but behind: commits stay on the principal alone until catch-up.
            await().atMost(Duration.ofSeconds(30)).until(() -> ds.partnership().status().mirrorHealth() == PartnerHealth.UP);
            assertThat(write(ds, 4)).isTrue();
        }
        // A coordinator started later learns it from the principal and does not feed the mirror.
        try (LockstepDataSource later = LockstepDataSource.start(config)) {
            assertThat(write(later, 5)).isTrue();
            assertThat(later.partnership().status().state()).isEqualTo(MirroringState.DISCONNECTED);
        }
        try (Connection p = pair.principal(); Connection m = pair.mirror()) {
            assertThat(value(p, "SELECT count(*) FROM t")).isEqualTo(5L);
            assertThat(value(m, "SELECT count(*) FROM t")).isEqualTo(1L);
            assertThat((Long) value(p, "SELECT count(*) FROM lockstep.journal"))
                    .isGreaterThan((Long) value(m, "SELECT count(*) FROM lockstep.journal"));
            assertThat(TwoNodes.lockstepPrepared(p)).isEmpty();
        } finally {
            claim.close();
        }
    }

    @Test
    void mirrorLostWhileTheApplicationHoldsEveryPooledConnection_isStillRecordedAndTheHeldConnectionsCommitExposed()
            throws Exception {
        TwoNodes.Pair pair = nodes.newPair("nowitness_saturated");
        LockstepConfig config = pair.config().partnerTimeout(Duration.ofSeconds(2)).heartbeatInterval(Duration.ofMillis(200))
                .poolSize(2).build();
        try (LockstepDataSource ds = LockstepDataSource.start(config)) {
            assertThat(TwoNodes.acknowledged(ds, "CREATE TABLE t (id bigint PRIMARY KEY)")).isTrue();
            // From here on the application holds every connection of the pool.
            try (Connection first = ds.getConnection(); Connection second = ds.getConnection();
                 Statement st = second.createStatement()) {
                assertThat(st.executeUpdate("INSERT INTO t VALUES (1)")).isEqualTo(1);
                nodes.b().proxy().partition();
                try {
                    await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> {
                        try (Connection p = pair.principal()) {
                            assertThat(value(p, "SELECT mirroring_state FROM lockstep.node_state")).isEqualTo("DISCONNECTED");
                        }
                    });
                    assertThat(st.executeUpdate("INSERT INTO t VALUES (2)")).isEqualTo(1);
                } finally {
                    nodes.b().proxy().heal();
                }
                assertThat(first.isValid(1)).isTrue();
            }
        }
        try (Connection p = pair.principal()) {
            assertThat(value(p, "SELECT count(*) FROM t")).isEqualTo(2L);
        }
    }

    private Connection claim;

    private void holdCatchUpClaim(TwoNodes.Pair pair) throws Exception {
        claim = pair.principal();
        try (var ps = claim.prepareStatement("SELECT pg_advisory_lock(hashtextextended(?, 0))")) {
            ps.setString(1, "lockstep.catch-up:" + pair.partnership());
            ps.execute();
        }
    }

    @Test
    void principalKilled_noAutomaticFailover_forcedServiceByTheOperator_oldPrincipalReturnsAsMirror() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("nowitness_forced");
        LockstepConfig config = config(pair);
        Set<Long> acknowledged = new java.util.HashSet<>();
        try (LockstepDataSource ds = LockstepDataSource.start(config)) {
            assertThat(TwoNodes.acknowledged(ds, "CREATE TABLE t (id bigint PRIMARY KEY)")).isTrue();
            for (long id = 1; id <= 10; id++) {
                assertThat(write(ds, id)).isTrue();
                acknowledged.add(id);
            }
            nodes.a().kill();
            try {
                await().atMost(Duration.ofSeconds(30))
                        .until(() -> ds.partnership().status().action() == QuorumRules.Action.NO_AUTOMATIC_FAILOVER);
                // Nothing promotes the mirror by itself, however long the principal stays away.
                await().during(Duration.ofSeconds(3)).atMost(Duration.ofSeconds(6)).until(() -> {
                    try (Connection m = pair.mirror()) {
                        return rows(m, "SELECT role, epoch FROM lockstep.node_state").equals(List.of(List.of("mirror", 1L)));
                    }
                });
                assertThatThrownBy(() -> ds.partnership().forceService(false)).isInstanceOf(SQLException.class)
                        .hasMessageContaining("consent");
                PartnershipRecord forced = ds.partnership().forceService(true);
                assertThat(forced.epoch()).isEqualTo(2);
                assertThat(forced.principal()).isEqualTo("node-b");
                assertThat(forced.state()).isEqualTo(MirroringState.SUSPENDED);
                await().atMost(Duration.ofSeconds(30)).until(() -> write(ds, 11));
                acknowledged.add(11L);
            } finally {
                nodes.a().restart();
            }
        }
        // A coordinator started with the original configuration finds the mirror serving and
        // demotes the old principal instead of serving from it.
        try (LockstepDataSource restarted = LockstepDataSource.start(config)) {
            assertThat(restarted.partnership().status().principal()).isEqualTo("node-b");
            assertThat(write(restarted, 12)).isTrue();
            acknowledged.add(12L);
        }
        try (Connection a = pair.principal(); Connection b = pair.mirror()) {
            assertThat(rows(a, "SELECT role, epoch FROM lockstep.node_state")).containsExactly(List.of("mirror", 2L));
            assertThat(rows(b, "SELECT role, epoch, mirroring_state FROM lockstep.node_state"))
                    .containsExactly(List.of("principal", 2L, "SUSPENDED"));
            assertThat(Writers.ids(b)).containsAll(acknowledged);
            assertThat(TwoNodes.lockstepPrepared(a)).isEmpty();
        }
    }
}
