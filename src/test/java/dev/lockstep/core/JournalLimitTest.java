package dev.lockstep.core;

import org.junit.jupiter.api.Test;

import static dev.lockstep.core.JournalLimit.Level.EXCEEDED;
import static dev.lockstep.core.JournalLimit.Level.NEAR;
import static dev.lockstep.core.JournalLimit.Level.WITHIN;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class JournalLimitTest {

    @Test
    void recordsWarnFromEightyPercentAndExceedAtTheLimit() {
        assertThat(JournalLimit.assess(0, 0, 1000, 0)).isEqualTo(WITHIN);
        assertThat(JournalLimit.assess(799, 0, 1000, 0)).isEqualTo(WITHIN);
        assertThat(JournalLimit.assess(800, 0, 1000, 0)).isEqualTo(NEAR);
        assertThat(JournalLimit.assess(999, 0, 1000, 0)).isEqualTo(NEAR);
        assertThat(JournalLimit.assess(1000, 0, 1000, 0)).isEqualTo(EXCEEDED);
        assertThat(JournalLimit.assess(Long.MAX_VALUE, 0, Long.MAX_VALUE, 0)).isEqualTo(EXCEEDED);
        assertThat(JournalLimit.assess(Long.MAX_VALUE / 2, 0, Long.MAX_VALUE, 0)).isEqualTo(WITHIN);
    }

    @Test
    void ageCountsOnlyWhenSetAndRecordsAreHeld() {
        assertThat(JournalLimit.assess(5, 10_000_000, 1000, 0)).isEqualTo(WITHIN);
        assertThat(JournalLimit.assess(5, 8_000, 1000, 10_000)).isEqualTo(NEAR);
        assertThat(JournalLimit.assess(5, 10_000, 1000, 10_000)).isEqualTo(EXCEEDED);
        assertThat(JournalLimit.assess(0, 10_000, 1000, 10_000)).isEqualTo(WITHIN);
    }

    @Test
    void badBoundsAreRefused() {
        assertThatThrownBy(() -> JournalLimit.assess(1, 1, 0, 0)).hasMessageContaining("maxRecords");
        assertThatThrownBy(() -> JournalLimit.assess(1, 1, 10, -1)).hasMessageContaining("maxAgeMillis");
    }
}
