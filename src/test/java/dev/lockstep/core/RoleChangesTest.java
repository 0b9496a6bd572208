package dev.lockstep.core;

import org.junit.jupiter.api.Test;

import static dev.lockstep.core.PartnerHealth.FAILED;
import static dev.lockstep.core.PartnerHealth.SUSPECT;
import static dev.lockstep.core.PartnerHealth.UP;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class RoleChangesTest {

    private static final long TIMEOUT = 10_000;

    private static PartnershipRecord record(MirroringState state, OperatingMode mode) {
        return new PartnershipRecord("p", 4, "a", "b", state, mode);
    }

    private static PartnershipRecord synced() {
        return record(MirroringState.SYNCHRONIZED, OperatingMode.HIGH_SAFETY_AUTOMATIC_FAILOVER);
    }

    @Test
    void automaticFailoverSwapsRolesAtTheNextEpochAndRunsExposed() {
        RoleChanges.Result r = RoleChanges.automaticFailover(synced(), QuorumRules.Action.FAILOVER);
        assertThat(r.next()).isEqualTo(new PartnershipRecord("p", 5, "b", "a", MirroringState.DISCONNECTED,
                OperatingMode.HIGH_SAFETY_AUTOMATIC_FAILOVER));
        assertThat(RoleChanges.automaticFailover(synced(), QuorumRules.Action.CUT_OFF_FROM_PRINCIPAL).refusal())
                .contains("CUT_OFF_FROM_PRINCIPAL");
    }

    @Test
    void manualFailoverOnlyWhileSynchronizedAndBackAgainIsTheSameCall() {
        PartnershipRecord swapped = RoleChanges.manualFailover(synced(), "b").next();
        assertThat(swapped.principal()).isEqualTo("b");
        assertThat(swapped.epoch()).isEqualTo(5);
        assertThat(swapped.state()).isEqualTo(MirroringState.SYNCHRONIZED);
        PartnershipRecord back = RoleChanges.manualFailover(swapped, "a").next();
        assertThat(back.principal()).isEqualTo("a");
        assertThat(back.epoch()).isEqualTo(6);
        assertThat(RoleChanges.manualFailover(synced(), "a").refusal()).contains("already the principal");
        assertThat(RoleChanges.manualFailover(synced(), "c").refusal()).contains("not a partner");
        assertThat(RoleChanges.manualFailover(record(MirroringState.DISCONNECTED, OperatingMode.HIGH_SAFETY), "b").refusal())
                .contains("SYNCHRONIZED").contains("epoch 4");
    }

    @Test
    void forcedServiceNeedsConsentALostPrincipalAndAWitnessThatAgrees() {
        PartnershipRecord r = synced();
        assertThat(RoleChanges.forceService(r, false, FAILED, UP, Long.MAX_VALUE, TIMEOUT).refusal()).contains("consent");
        assertThat(RoleChanges.forceService(r, true, UP, UP, Long.MAX_VALUE, TIMEOUT).refusal()).contains("not lost");
        assertThat(RoleChanges.forceService(r, true, SUSPECT, UP, Long.MAX_VALUE, TIMEOUT).allowed()).isFalse();
        assertThat(RoleChanges.forceService(r, true, FAILED, FAILED, Long.MAX_VALUE, TIMEOUT).refusal()).contains("witness");
        assertThat(RoleChanges.forceService(r, true, FAILED, UP, TIMEOUT - 1, TIMEOUT).refusal()).contains("lease");
        RoleChanges.Result forced = RoleChanges.forceService(r, true, FAILED, UP, TIMEOUT, TIMEOUT);
        assertThat(forced.next().state()).isEqualTo(MirroringState.SUSPENDED);
        assertThat(forced.next().principal()).isEqualTo("b");
        PartnershipRecord noWitness = record(MirroringState.DISCONNECTED, OperatingMode.HIGH_SAFETY);
        assertThat(RoleChanges.forceService(noWitness, true, FAILED, FAILED, 0, TIMEOUT).allowed()).isTrue();
    }

    @Test
    void suspendResumeAndCatchUpMoveThroughTheStates() {
        PartnershipRecord suspended = RoleChanges.suspend(synced()).next();
        assertThat(suspended.state()).isEqualTo(MirroringState.SUSPENDED);
        assertThat(suspended.epoch()).isEqualTo(4);
        assertThat(RoleChanges.suspend(suspended).allowed()).isFalse();
        PartnershipRecord resumed = RoleChanges.resume(suspended).next();
        assertThat(resumed.state()).isEqualTo(MirroringState.SYNCHRONIZING);
        assertThat(RoleChanges.resume(resumed).allowed()).isFalse();
        assertThat(RoleChanges.caughtUp(resumed).next().state()).isEqualTo(MirroringState.SYNCHRONIZED);
        assertThat(RoleChanges.caughtUp(synced()).allowed()).isFalse();
        assertThat(RoleChanges.mirrorLost(synced()).next().state()).isEqualTo(MirroringState.DISCONNECTED);
        assertThat(RoleChanges.mirrorLost(suspended).allowed()).isFalse();
    }

    @Test
    void recordsAreValidated() {
        assertThatThrownBy(() -> new PartnershipRecord("p", 0, "a", "b", MirroringState.SYNCHRONIZED, OperatingMode.HIGH_SAFETY))
                .hasMessageContaining("epoch");
        assertThatThrownBy(() -> new PartnershipRecord("p", 1, "a", "a", MirroringState.SYNCHRONIZED, OperatingMode.HIGH_SAFETY))
                .hasMessageContaining("different");
        assertThat(synced().roleOf("b")).isEqualTo(NodeRole.MIRROR);
        assertThat(synced().roleOf("z")).isNull();
    }

    @Test
    void theLeaseEndsBeforeThePartnerTimeoutAndHealthFollowsTheTimeout() {
        long sent = 1_000_000_000L;
        assertThat(ExposedLease.holds(sent, sent + 4_999_000_000L, TIMEOUT)).isTrue();
        assertThat(ExposedLease.holds(sent, sent + 5_000_000_000L, TIMEOUT)).isFalse();
        assertThat(ExposedLease.durationMillis(TIMEOUT)).isLessThan(TIMEOUT);
        assertThat(PartnerHealth.of(true, false, TIMEOUT - 1, TIMEOUT)).isEqualTo(UP);
        // A probe hanging on a frozen node: the last finished one succeeded, but it is silent now.
        assertThat(PartnerHealth.of(true, false, TIMEOUT, TIMEOUT)).isEqualTo(FAILED);
        assertThat(PartnerHealth.of(false, true, 0, TIMEOUT)).isEqualTo(FAILED);
        assertThat(PartnerHealth.of(false, false, TIMEOUT - 1, TIMEOUT)).isEqualTo(SUSPECT);
        assertThat(PartnerHealth.of(false, false, TIMEOUT, TIMEOUT)).isEqualTo(FAILED);
    }
}
