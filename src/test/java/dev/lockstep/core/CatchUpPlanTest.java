package dev.lockstep.core;

import org.junit.jupiter.api.Test;

import static dev.lockstep.core.CatchUpPlan.Kind.CATCH_UP;
import static dev.lockstep.core.CatchUpPlan.Kind.SEED;
import static org.assertj.core.api.Assertions.assertThat;

class CatchUpPlanTest {

    @Test
    void seedWhenMarkedDivergedOrBlankBesideAPrincipalThatHoldsSomething() {
        assertThat(CatchUpPlan.decide(false, false, false, 0)).isEqualTo(CATCH_UP);
        assertThat(CatchUpPlan.decide(true, false, false, 0)).isEqualTo(SEED);
        assertThat(CatchUpPlan.decide(false, false, false, 3)).isEqualTo(SEED);
        assertThat(CatchUpPlan.decide(false, true, false, 0)).isEqualTo(SEED);
        // A new partnership: both blank, nothing to copy.
        assertThat(CatchUpPlan.decide(false, true, true, 0)).isEqualTo(CATCH_UP);
    }

    @Test
    void aMirrorThatDroppedItsJournalOfAnEarlierEpochIsSeededNotCaughtUp() {
        assertThat(CatchUpPlan.decide(false, false, false, 0, true, false)).isEqualTo(SEED);
        assertThat(CatchUpPlan.decide(false, false, false, 0, false, false)).isEqualTo(CATCH_UP);
    }

    @Test
    void aMirrorBelowThePrincipalsTrimPositionIsSeededNotCaughtUp() {
        assertThat(CatchUpPlan.decide(false, false, false, 0, false, true)).isEqualTo(SEED);
        // The newest record the principal deleted is (2, 100).
        assertThat(CatchUpPlan.belowTrim(2, 99, 2, 100)).isTrue();
        assertThat(CatchUpPlan.belowTrim(1, 500, 2, 100)).isTrue();
        assertThat(CatchUpPlan.belowTrim(2, 100, 2, 100)).as("holds that record itself").isFalse();
        assertThat(CatchUpPlan.belowTrim(2, 250, 2, 100)).isFalse();
        assertThat(CatchUpPlan.belowTrim(3, 1, 2, 100)).isFalse();
        assertThat(CatchUpPlan.belowTrim(0, 0, 0, 0)).as("never trimmed").isFalse();
    }

    @Test
    void onlyRecordsOfEarlierEpochsAtOrAboveThePrincipalsTrimPositionDiverge() {
        // Principal at epoch 3, trimmed below (2, 100).
        assertThat(CatchUpPlan.divergent(3, 5, 3, 2, 100)).as("its own epoch").isFalse();
        assertThat(CatchUpPlan.divergent(2, 99, 3, 2, 100)).as("below the trim").isFalse();
        assertThat(CatchUpPlan.divergent(1, 500, 3, 2, 100)).as("earlier epoch, below the trim").isFalse();
        assertThat(CatchUpPlan.divergent(2, 100, 3, 2, 100)).isTrue();
        assertThat(CatchUpPlan.divergent(2, 7, 3, 0, 0)).isTrue();
        assertThat(CatchUpPlan.divergent(0, 7, 3, 0, 0)).as("in-doubt bars").isFalse();
    }
}
