package dev.lockstep.it;

import dev.lockstep.CatchUpResult;
import dev.lockstep.JournalRetentionListener;
import dev.lockstep.JournalUsage;
import dev.lockstep.LockstepConfig;
import dev.lockstep.LockstepDataSource;
import dev.lockstep.VerifyReport;
import dev.lockstep.core.MirroringState;
import dev.lockstep.core.PartnershipRecord;
import dev.lockstep.witness.WitnessStore;
import org.junit.jupiter.api.Test;

import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

import static dev.lockstep.it.TwoNodes.value;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** Journal retention: trimmed while both nodes hold it; bounded while the mirror is away, which then needs a re-seed. */
class RetentionTest extends OnTwoNodesAndWitness {

    private static final long LIMIT = 1500;

    /** Records what the retention listener is told. */
    static final class Recorded implements JournalRetentionListener {
        final List<JournalUsage> near = new CopyOnWriteArrayList<>();
        final List<JournalUsage> exceeded = new CopyOnWriteArrayList<>();
        /** The same news through the events API. */
        final List<dev.lockstep.events.LockstepEvent.JournalLimit> events = new CopyOnWriteArrayList<>();

        @Override
        public void nearLimit(JournalUsage usage) {
            near.add(usage);
        }

        @Override
        public void limitExceeded(JournalUsage usage) {
            exceeded.add(usage);
        }
    }

    private static LockstepConfig config(TwoNodes.Pair pair, Recorded listener) {
        return pair.config().witness(witness.config()).partnerTimeout(Duration.ofSeconds(2))
                .heartbeatInterval(Duration.ofMillis(200)).journalLimitRecords(LIMIT)
                .journalCheckInterval(Duration.ofMillis(300)).journalRetentionListener(listener)
                .listener(e -> {
                    if (e instanceof dev.lockstep.events.LockstepEvent.JournalLimit j) {
                        listener.events.add(j);
                    }
                }).build();
    }

    private static PartnershipRecord record(TwoNodes.Pair pair) throws SQLException {
        return witness.store().read(pair.partnership()).record();
    }

    private static long journal(Connection c) throws SQLException {
        return (Long) value(c, "SELECT count(*) FROM lockstep.journal WHERE epoch > 0");
    }

    /**
     * While SYNCHRONIZED the records both nodes hold are deleted on both; a mirror that is then
     * lost for a while still catches up (no seeding) from what the principal kept since.
     */
    @Test
    void journalIsTrimmedWhileSynchronizedAndCatchUpStillWorksAfterwards() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("trimsync");
        Recorded listener = new Recorded();
        // A limit the time away (in-doubt resolution included) stays well within.
        LockstepConfig config = config(pair, listener).toBuilder().journalLimitRecords(1_000_000).build();
        try (LockstepDataSource ds = LockstepDataSource.start(config)) {
            assertThat(TwoNodes.acknowledged(ds, "CREATE TABLE t (id bigint PRIMARY KEY)")).isTrue();
            try (Writers writers = Writers.start(ds, 2)) {
                await().atMost(Duration.ofSeconds(60)).until(() -> writers.count() >= 1000);
                writers.stop();
            }
            try (Connection p = pair.principal(); Connection m = pair.mirror()) {
                await().atMost(Duration.ofSeconds(30)).until(() -> journal(p) == 0 && journal(m) == 0);
                assertThat(value(p, "SELECT journal_trimmed_seq > 1000 FROM lockstep.node_state")).isEqualTo(true);
                assertThat(value(m, "SELECT journal_trimmed_seq FROM lockstep.node_state"))
                        .isEqualTo(value(p, "SELECT journal_trimmed_seq FROM lockstep.node_state"));
            }
            try (Writers writers = Writers.start(ds, 2, 1_000_000)) {
                await().atMost(Duration.ofSeconds(30)).until(() -> writers.count() >= 100);
                nodes.b().kill();
                try {
                    await().ignoreExceptions().atMost(Duration.ofSeconds(30)).until(() -> record(pair).state() == MirroringState.DISCONNECTED);
                    int atLoss = writers.count();
                    await().atMost(Duration.ofSeconds(60)).until(() -> writers.count() >= atLoss + 300);
                } finally {
                    nodes.b().restart();
                }
                await().ignoreExceptions().atMost(Duration.ofSeconds(120)).pollInterval(Duration.ofMillis(100))
                        .until(() -> record(pair).state() == MirroringState.SYNCHRONIZED && ds.partnership().lastCatchUp().isPresent());
                writers.stop();
                CatchUpResult result = ds.partnership().lastCatchUp().orElseThrow();
                assertThat(result.seeded()).isFalse();
                assertThat(result.replayed()).isGreaterThanOrEqualTo(300);
                VerifyReport report = ds.partnership().verify();
                assertThat(report.identical()).as("%s", report).isTrue();
                try (Connection m = pair.mirror()) {
                    assertThat(Writers.ids(m)).containsAll(writers.acknowledged());
                }
            }
            assertThat(listener.near).isEmpty();
            assertThat(listener.exceeded).isEmpty();
        }
    }

    /**
     * A record of an acknowledged commit that only the mirror holds (its principal was put back to
     * an older copy) is never trimmed: retention trims both nodes up to it and stops there, so
     * the mirror keeps the only record left of that commit.
     */
    @Test
    void retentionStopsBelowARecordOnlyTheMirrorHolds() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("trimgap");
        LockstepConfig config = config(pair, new Recorded()).toBuilder().journalLimitRecords(1_000_000).build();
        try (LockstepDataSource ds = LockstepDataSource.start(config)) {
            assertThat(TwoNodes.acknowledged(ds, "CREATE TABLE t (id bigint PRIMARY KEY)")).isTrue();
            for (int id = 1; id <= 10; id++) {
                assertThat(TwoNodes.acknowledged(ds, "INSERT INTO t VALUES (" + id + ")")).isTrue();
            }
            long gap;
            try (Connection p = pair.principal(); Statement st = p.createStatement()) {
                gap = (Long) value(p, "SELECT seq FROM lockstep.journal WHERE epoch > 0 ORDER BY seq DESC OFFSET 4 LIMIT 1");
                st.execute("DELETE FROM lockstep.journal WHERE epoch > 0 AND seq = " + gap);
            }
            for (int id = 11; id <= 15; id++) {
                assertThat(TwoNodes.acknowledged(ds, "INSERT INTO t VALUES (" + id + ")")).isTrue();
            }
            try (Connection p = pair.principal(); Connection m = pair.mirror()) {
                await().atMost(Duration.ofSeconds(30)).until(() -> (Long) value(p, "SELECT journal_trimmed_seq FROM lockstep.node_state") >= gap);
                // Several retention runs (every 300 ms) later, still at the gap.
                await().during(Duration.ofSeconds(2)).atMost(Duration.ofSeconds(5))
                        .until(() -> (Long) value(p, "SELECT journal_trimmed_seq FROM lockstep.node_state") == gap);
                assertThat(value(m, "SELECT count(*) FROM lockstep.journal WHERE epoch > 0 AND seq = " + gap)).isEqualTo(1L);
                assertThat(value(p, "SELECT count(*) FROM lockstep.journal WHERE epoch > 0 AND seq > " + gap)).isEqualTo(9L);
            }
        }
    }

    /**
     * The mirror is away while the principal commits alone past the journal limit: the warning
     * fires first, then the mirror is marked for re-seeding at the principal and the witness and
     * the journal stays bounded; when the mirror returns it is seeded, not caught up, and both
     * nodes end identical.
     */
    @Test
    void journalLimitExceededWhileTheMirrorIsAway_warnsMarksTheMirrorForReseedKeepsTheJournalBoundedAndReseeds() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("limit");
        Recorded listener = new Recorded();
        try (LockstepDataSource ds = LockstepDataSource.start(config(pair, listener))) {
            assertThat(TwoNodes.acknowledged(ds, "CREATE TABLE t (id bigint PRIMARY KEY)")).isTrue();
            try (Writers writers = Writers.start(ds, 2)) {
                await().atMost(Duration.ofSeconds(30)).until(() -> writers.count() >= 200);
                nodes.b().kill();
                try {
                    await().ignoreExceptions().atMost(Duration.ofSeconds(30)).until(() -> record(pair).state() == MirroringState.DISCONNECTED);
                    await().atMost(Duration.ofSeconds(120)).until(() -> !listener.exceeded.isEmpty());
                    assertThat(listener.near).hasSize(1);
                    assertThat(listener.near.get(0).records()).isGreaterThanOrEqualTo(LIMIT * 8 / 10);
                    assertThat(listener.exceeded).hasSize(1);
                    assertThat(listener.exceeded.get(0).records()).isGreaterThanOrEqualTo(LIMIT);
                    assertThat(listener.exceeded.get(0).mirror()).isEqualTo("node-b");
                    await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(listener.events)
                            .extracting(dev.lockstep.events.LockstepEvent.JournalLimit::exceeded).containsExactly(false, true));
                    assertThat(ds.partnership().mirrorNeedsSeeding()).isTrue();
                    assertThat(witness.store().mirrorNeedsSeeding(pair.partnership())).isTrue();
                    // Writers go on well past the limit; the journal stays bounded.
                    int atMark = writers.count();
                    await().atMost(Duration.ofSeconds(120)).until(() -> writers.count() >= atMark + 2 * (int) LIMIT);
                    try (Connection p = pair.principal()) {
                        assertThat(journal(p)).isLessThan(LIMIT);
                    }
                    assertThat(listener.exceeded).hasSize(1);
                } finally {
                    nodes.b().restart();
                }
                await().ignoreExceptions().atMost(Duration.ofSeconds(120)).pollInterval(Duration.ofMillis(100))
                        .until(() -> record(pair).state() == MirroringState.SYNCHRONIZED);
                int synced = writers.count();
                await().atMost(Duration.ofSeconds(30)).until(() -> writers.count() >= synced + 100);
                writers.stop();
                assertThat(ds.partnership().lastCatchUp().orElseThrow().seeded()).isTrue();
                assertThat(ds.partnership().mirrorNeedsSeeding()).isFalse();
                assertThat(witness.store().mirrorNeedsSeeding(pair.partnership())).isFalse();
                VerifyReport report = ds.partnership().verify();
                assertThat(report.identical()).as("%s", report).isTrue();
                try (Connection p = pair.principal(); Connection m = pair.mirror()) {
                    assertThat(Writers.ids(m)).containsAll(writers.acknowledged());
                    assertThat(TwoNodes.rows(m, "SELECT id FROM t ORDER BY id")).isEqualTo(TwoNodes.rows(p, "SELECT id FROM t ORDER BY id"));
                }
            }
        }
        assertThat(witness.store().history(pair.partnership())).extracting(WitnessStore.Transition::reason)
                .anyMatch(r -> r.startsWith("journal limit exceeded on principal node-a"));
    }
}
