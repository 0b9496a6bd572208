package dev.lockstep.core;

import dev.lockstep.core.InDoubtRule.Outcome;
import dev.lockstep.core.InDoubtRule.Peer;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

class InDoubtRuleTest {

    private static final long GRACE = 30_000;

    @Test
    void everyCombinationFollowsTheRule() {
        for (Peer peer : Peer.values()) {
            for (boolean ownerActive : new boolean[] {true, false}) {
                for (long age : new long[] {0, GRACE - 1, GRACE, GRACE * 10}) {
                    Outcome outcome = InDoubtRule.decide(peer, ownerActive, age, GRACE);
                    assertThat(outcome).as("peer=%s ownerActive=%s age=%d", peer, ownerActive, age)
                            .isEqualTo(expected(peer, ownerActive, age));
                }
            }
        }
    }

    private static Outcome expected(Peer peer, boolean ownerActive, long age) {
        if (ownerActive) {
            return Outcome.WAIT;
        }
        if (peer == Peer.COMMITTED) {
            return Outcome.COMMIT;
        }
        if (peer == Peer.UNREACHABLE || age < GRACE) {
            return Outcome.WAIT;
        }
        return peer == Peer.PREPARED || peer == Peer.WRITTEN_OFF ? Outcome.COMMIT : Outcome.ROLLBACK;
    }

    @Test
    void aTransactionThisCoordinatorGaveUpOnNeedsNoGrace() {
        for (Peer peer : Peer.values()) {
            Outcome young = InDoubtRule.decide(peer, InDoubtRule.Owner.ABANDONED_HERE, 0, GRACE);
            assertThat(young).as("%s", peer).isEqualTo(expected(peer, false, GRACE));
            assertThat(InDoubtRule.decide(peer, InDoubtRule.Owner.UNKNOWN, 0, GRACE)).as("%s", peer)
                    .isEqualTo(peer == Peer.COMMITTED ? Outcome.COMMIT : Outcome.WAIT);
            assertThat(InDoubtRule.decide(peer, InDoubtRule.Owner.ACTIVE, Long.MAX_VALUE, GRACE)).isEqualTo(Outcome.WAIT);
        }
        assertThat(InDoubtRule.decide(Peer.WRITTEN_OFF, InDoubtRule.Owner.ABANDONED_HERE, 0, GRACE)).isEqualTo(Outcome.COMMIT);
        assertThat(InDoubtRule.decide(Peer.ABSENT, InDoubtRule.Owner.ABANDONED_HERE, 0, GRACE)).isEqualTo(Outcome.ROLLBACK);
        assertThat(InDoubtRule.decide(Peer.UNREACHABLE, InDoubtRule.Owner.ABANDONED_HERE, 0, GRACE)).isEqualTo(Outcome.WAIT);
    }

    @Test
    void committedOnThePeerCommitsAtOnceWhateverTheAge() {
        assertThat(InDoubtRule.decide(Peer.COMMITTED, false, 0, GRACE)).isEqualTo(Outcome.COMMIT);
    }

    @Test
    void aLiveCommitIsNeverSettledUnderIt() {
        for (Peer peer : Peer.values()) {
            assertThat(InDoubtRule.decide(peer, true, Long.MAX_VALUE, GRACE)).isEqualTo(Outcome.WAIT);
        }
    }

    @Test
    void preparedOnOneNodeOnlyRollsBackOnceOld() {
        assertThat(InDoubtRule.decide(Peer.ABSENT, false, GRACE, GRACE)).isEqualTo(Outcome.ROLLBACK);
        assertThat(InDoubtRule.decide(Peer.ABSENT, false, GRACE - 1, GRACE)).isEqualTo(Outcome.WAIT);
    }
}
