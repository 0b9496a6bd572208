package dev.lockstep;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

class RestartWatchTest {

    @Test
    void aNewIncarnationOfTheSameNodeMakesACheckDueUntilACheckOfItEnds() {
        RestartWatch watch = new RestartWatch();
        watch.observe("node-b", "100 16384");
        assertThat(watch.checkDue()).isFalse();
        watch.observe("node-b", null);
        assertThat(watch.checkDue()).isFalse();
        watch.observe("node-b", "200 16384");
        assertThat(watch.checkDue()).isTrue();
        String checking = watch.startCheck();
        assertThat(checking).isEqualTo("200 16384");
        assertThat(watch.startCheck()).as("one check at a time").isNull();
        watch.checkEnded(checking, false);
        assertThat(watch.checkDue()).as("an inconclusive check leaves it due").isTrue();
        checking = watch.startCheck();
        watch.checkEnded(checking, true);
        assertThat(watch.checkDue()).isFalse();
        assertThat(watch.startCheck()).isNull();
    }

    @Test
    void aRestartDuringACheckKeepsTheCheckDueForTheNewIncarnation() {
        RestartWatch watch = new RestartWatch();
        watch.observe("node-b", "100 16384");
        watch.observe("node-b", "200 16384");
        String checking = watch.startCheck();
        watch.observe("node-b", "300 16384");
        watch.checkEnded(checking, true);
        assertThat(watch.checkDue()).isTrue();
        assertThat(watch.startCheck()).isEqualTo("300 16384");
    }

    @Test
    void watchingAnotherNodeStartsAfresh() {
        RestartWatch watch = new RestartWatch();
        watch.observe("node-b", "100 16384");
        watch.observe("node-b", "200 16384");
        watch.observe("node-a", "150 16384");
        assertThat(watch.checkDue()).as("roles swapped: the new mirror's first reading").isFalse();
        watch.observe("node-a", "250 16385");
        assertThat(watch.checkDue()).as("a replaced database").isTrue();
    }

    @Test
    void dueWaitsForBothPartnersAndIsDroppedOnceTheMirrorIsRecordedBehind() {
        RestartWatch watch = new RestartWatch();
        assertThat(watch.due("node-b", "100 16384", true, true)).isNull();
        assertThat(watch.due("node-b", "200 16384", true, false)).as("a partner does not answer: wait").isNull();
        assertThat(watch.checkDue()).isTrue();
        assertThat(watch.due("node-b", "200 16384", true, true)).isEqualTo("200 16384");
        watch.checkEnded("200 16384", false);
        assertThat(watch.due("node-b", "200 16384", false, true)).as("not SYNCHRONIZED any more").isNull();
        assertThat(watch.checkDue()).isFalse();
    }
}
