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
        assertThat(CatchUpPlan.decide(false, false, false, 0, true)).isEqualTo(SEED);
        assertThat(CatchUpPlan.decide(false, false, false, 0, false)).isEqualTo(CATCH_UP);
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
