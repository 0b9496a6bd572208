package dev.lockstep.core;

import dev.lockstep.core.QuorumRules.Action;
import dev.lockstep.core.QuorumRules.Observation;
import org.junit.jupiter.api.Test;

import java.util.EnumSet;

import static dev.lockstep.core.PartnerHealth.FAILED;
import static dev.lockstep.core.PartnerHealth.SUSPECT;
import static dev.lockstep.core.PartnerHealth.UP;
import static org.assertj.core.api.Assertions.assertThat;

/** The quorum table of DESIGN.md, row by row, and invariants I5 and I7 over every combination. */
class QuorumRulesTest {

    private static final long TIMEOUT = 10_000;

    private static Observation see(OperatingMode mode, MirroringState state, PartnerHealth principal,
                                   PartnerHealth mirror, PartnerHealth witness, long unseen) {
        return new Observation(new PartnershipRecord("p", 3, "a", "b", state, mode), principal, mirror, witness, unseen, TIMEOUT);
    }

    private static Action auto(MirroringState state, PartnerHealth principal, PartnerHealth mirror, PartnerHealth witness, long unseen) {
        return QuorumRules.decide(see(OperatingMode.HIGH_SAFETY_AUTOMATIC_FAILOVER, state, principal, mirror, witness, unseen));
    }

    @Test
    void allConnectedIsLockstep() {
        assertThat(auto(MirroringState.SYNCHRONIZED, UP, UP, UP, 0)).isEqualTo(Action.LOCKSTEP);
    }

    @Test
    void mirrorLostWithWitnessRunsExposed() {
        assertThat(auto(MirroringState.SYNCHRONIZED, UP, FAILED, UP, 0)).isEqualTo(Action.RUN_EXPOSED);
        assertThat(auto(MirroringState.DISCONNECTED, UP, FAILED, UP, 0)).isEqualTo(Action.RUN_EXPOSED);
    }

    @Test
    void principalLostWithSynchronizedMirrorAndWitnessFailsOver() {
        assertThat(auto(MirroringState.SYNCHRONIZED, FAILED, UP, UP, TIMEOUT)).isEqualTo(Action.FAILOVER);
        assertThat(auto(MirroringState.SYNCHRONIZED, FAILED, UP, UP, Long.MAX_VALUE)).isEqualTo(Action.FAILOVER);
    }

    @Test
    void principalLostWithMirrorNotSynchronizedNeedsForcedService() {
        for (MirroringState s : EnumSet.of(MirroringState.SYNCHRONIZING, MirroringState.DISCONNECTED, MirroringState.SUSPENDED)) {
            assertThat(auto(s, FAILED, UP, UP, Long.MAX_VALUE)).as(s.name()).isEqualTo(Action.NO_AUTOMATIC_FAILOVER);
        }
    }

    @Test
    void witnessLostKeepsLockstepButDisarmsFailover() {
        Observation o = see(OperatingMode.HIGH_SAFETY_AUTOMATIC_FAILOVER, MirroringState.SYNCHRONIZED, UP, UP, FAILED, 0);
        assertThat(QuorumRules.decide(o)).isEqualTo(Action.LOCKSTEP);
        assertThat(QuorumRules.automaticFailoverAllowed(o)).isFalse();
        assertThat(auto(MirroringState.SYNCHRONIZED, FAILED, UP, FAILED, Long.MAX_VALUE)).isEqualTo(Action.NO_AUTOMATIC_FAILOVER);
    }

    @Test
    void witnessLostThenMirrorLostStopsWrites() {
        assertThat(auto(MirroringState.SYNCHRONIZED, UP, FAILED, FAILED, 0)).isEqualTo(Action.STOP_WRITES);
        assertThat(auto(MirroringState.DISCONNECTED, UP, FAILED, FAILED, 0)).isEqualTo(Action.STOP_WRITES);
    }

    @Test
    void coordinatorCutOffFromALivePrincipalDoesNotFailOver() {
        assertThat(auto(MirroringState.SYNCHRONIZED, FAILED, UP, UP, TIMEOUT - 1)).isEqualTo(Action.CUT_OFF_FROM_PRINCIPAL);
        assertThat(auto(MirroringState.SYNCHRONIZED, FAILED, UP, UP, 0)).isEqualTo(Action.CUT_OFF_FROM_PRINCIPAL);
    }

    @Test
    void aRefusedPrincipalNeedsOnlyThreeHeartbeatsOfQuietButSilenceNeedsThePartnerTimeout() {
        assertThat(QuorumRules.quietMillis(true, 1_000, TIMEOUT)).isEqualTo(3_000);
        assertThat(QuorumRules.quietMillis(false, 1_000, TIMEOUT)).isEqualTo(TIMEOUT);
        // Never longer than the partner timeout, whatever the heartbeat.
        assertThat(QuorumRules.quietMillis(true, 9_000, TIMEOUT)).isEqualTo(TIMEOUT);
        PartnershipRecord synchronizedRecord = new PartnershipRecord("p", 3, "a", "b", MirroringState.SYNCHRONIZED,
                OperatingMode.HIGH_SAFETY_AUTOMATIC_FAILOVER);
        long quiet = QuorumRules.quietMillis(true, 1_000, TIMEOUT);
        assertThat(QuorumRules.decide(new Observation(synchronizedRecord, FAILED, UP, UP, 3_000, quiet))).isEqualTo(Action.FAILOVER);
        // A beat delayed by most of two heartbeats from a coordinator that still reaches it holds the promotion off.
        assertThat(QuorumRules.decide(new Observation(synchronizedRecord, FAILED, UP, UP, 2_900, quiet)))
                .isEqualTo(Action.CUT_OFF_FROM_PRINCIPAL);
    }

    @Test
    void noWitnessModeRunsExposedWhenTheMirrorIsLostAndNeverFailsOverByItself() {
        assertThat(QuorumRules.decide(see(OperatingMode.HIGH_SAFETY, MirroringState.SYNCHRONIZED, UP, FAILED, FAILED, 0)))
                .isEqualTo(Action.RUN_EXPOSED);
        assertThat(QuorumRules.decide(see(OperatingMode.HIGH_SAFETY, MirroringState.SYNCHRONIZED, FAILED, UP, UP, Long.MAX_VALUE)))
                .isEqualTo(Action.NO_AUTOMATIC_FAILOVER);
    }

    @Test
    void silentPartnersAreGivenThePartnerTimeout() {
        assertThat(auto(MirroringState.SYNCHRONIZED, SUSPECT, UP, UP, Long.MAX_VALUE)).isEqualTo(Action.AWAIT_PARTNER_TIMEOUT);
        assertThat(auto(MirroringState.SYNCHRONIZED, UP, SUSPECT, UP, 0)).isEqualTo(Action.AWAIT_PARTNER_TIMEOUT);
    }

    @Test
    void aRoleChangeUnderWayStopsWrites() {
        assertThat(auto(MirroringState.PENDING_FAILOVER, UP, UP, UP, 0)).isEqualTo(Action.STOP_WRITES);
    }

    @Test
    void highPerformanceCommitsOnThePrincipalAloneAndOnlyFailsOverByForce() {
        assertThat(QuorumRules.decide(see(OperatingMode.HIGH_PERFORMANCE, MirroringState.SYNCHRONIZED, UP, UP, FAILED, 0)))
                .isEqualTo(Action.RUN_EXPOSED);
        assertThat(QuorumRules.decide(see(OperatingMode.HIGH_PERFORMANCE, MirroringState.SYNCHRONIZED, FAILED, UP, UP, Long.MAX_VALUE)))
                .isEqualTo(Action.NO_AUTOMATIC_FAILOVER);
    }

    /** I5 and I7 over every combination of mode, state, health and witness sighting. */
    @Test
    void invariantsHoldForEveryCombination() {
        int combinations = 0;
        for (OperatingMode mode : OperatingMode.values()) {
            for (MirroringState state : MirroringState.values()) {
                for (PartnerHealth principal : PartnerHealth.values()) {
                    for (PartnerHealth mirror : PartnerHealth.values()) {
                        for (PartnerHealth witness : PartnerHealth.values()) {
                            for (long unseen : new long[] {0, TIMEOUT - 1, TIMEOUT, Long.MAX_VALUE}) {
                                Observation o = see(mode, state, principal, mirror, witness, unseen);
                                Action a = QuorumRules.decide(o);
                                String why = o + " -> " + a;
                                if (a == Action.FAILOVER) {
                                    // I5: only a synchronized mirror, only with the witness, only once nobody reached the principal.
                                    assertThat(mode).as(why).isEqualTo(OperatingMode.HIGH_SAFETY_AUTOMATIC_FAILOVER);
                                    assertThat(state).as(why).isEqualTo(MirroringState.SYNCHRONIZED);
                                    assertThat(witness).as(why).isEqualTo(UP);
                                    assertThat(mirror).as(why).isEqualTo(UP);
                                    assertThat(principal).as(why).isEqualTo(FAILED);
                                    assertThat(unseen).as(why).isGreaterThanOrEqualTo(TIMEOUT);
                                }
                                if (a == Action.LOCKSTEP || a == Action.RUN_EXPOSED) {
                                    // I7: a serving principal has quorum with the mirror or the witness.
                                    assertThat(principal).as(why).isEqualTo(UP);
                                    assertThat(mirror == UP || witness == UP || !mode.usesWitness()).as(why).isTrue();
                                }
                                if (a == Action.LOCKSTEP) {
                                    assertThat(state).as(why).isEqualTo(MirroringState.SYNCHRONIZED);
                                    assertThat(mirror).as(why).isEqualTo(UP);
                                }
                                combinations++;
                            }
                        }
                    }
                }
            }
        }
        assertThat(combinations).isEqualTo(3 * 5 * 3 * 3 * 3 * 4);
    }
}
