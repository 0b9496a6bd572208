package dev.lockstep.it;

import dev.lockstep.DivergentTransaction;
import dev.lockstep.LockstepConfig;
import dev.lockstep.LockstepDataSource;
import dev.lockstep.core.MirroringState;
import dev.lockstep.core.OperatingMode;
import org.junit.jupiter.api.Test;

import java.sql.Connection;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.concurrent.atomic.AtomicLong;

import static dev.lockstep.it.TwoNodes.value;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * HIGH_PERFORMANCE (asynchronous) mode: the principal commits alone, the journal is shipped to
 * the mirror continuously, the lag shows in the send queue and drains; a lost mirror costs no
 * commit and catches up when it returns.
 */
class HighPerformanceTest extends OnTwoNodes {

    private static final Duration WAIT = Duration.ofSeconds(60);

    private static LockstepConfig config(TwoNodes.Pair pair) {
        return pair.config().mode(OperatingMode.HIGH_PERFORMANCE).heartbeatInterval(Duration.ofMillis(200))
                .partnerTimeout(Duration.ofSeconds(2)).journalCheckInterval(Duration.ofMillis(500)).build();
    }

    private static String mirroringState(Connection principal) throws Exception {
        return (String) value(principal, "SELECT mirroring_state FROM lockstep.node_state");
    }

    private static boolean mirrorHolds(TwoNodes.Pair pair, Writers writers) throws Exception {
        try (Connection m = pair.mirror()) {
            return Writers.ids(m).containsAll(writers.acknowledged());
        }
    }

    @Test
    void lagRisesUnderLoadAndDrainsAndALostMirrorCostsNoCommit() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("async");
        try (LockstepDataSource ds = LockstepDataSource.start(config(pair)); Connection p = pair.principal()) {
            assertThat(TwoNodes.acknowledged(ds, "CREATE TABLE t (id bigint PRIMARY KEY)")).isTrue();
            await().atMost(WAIT).until(() -> "SYNCHRONIZING".equals(mirroringState(p)));
            AtomicLong highestLag = new AtomicLong();
            try (Writers writers = Writers.start(ds, 4)) {
                await().atMost(WAIT).pollInterval(Duration.ofMillis(50)).until(() -> {
                    highestLag.accumulateAndGet(ds.partnership().statistics().sendQueueRecords(), Math::max);
                    return highestLag.get() > 0 && writers.count() >= 2_000;
                });
                assertThat(ds.partnership().statistics().transactionsAlone()).isGreaterThanOrEqualTo(1_000);
                assertThat(ds.partnership().statistics().transactionsMirrored()).isLessThan(10);

                // The mirror lost: commits go on, nothing is refused; back, it is shipped what it missed.
                long failuresBefore = writers.failures();
                nodes.b().kill();
                try {
                    await().atMost(WAIT).until(() -> "DISCONNECTED".equals(mirroringState(p)));
                    int atLoss = writers.count();
                    await().atMost(WAIT).until(() -> writers.count() >= atLoss + 1_000);
                } finally {
                    nodes.b().restart();
                }
                await().atMost(WAIT).until(() -> "SYNCHRONIZING".equals(mirroringState(p)));
                int atReturn = writers.count();
                await().atMost(WAIT).until(() -> writers.count() >= atReturn + 500);
                writers.stop();
                assertThat(writers.failures()).as("%s", writers.failureMessages()).isEqualTo(failuresBefore);
                // Drains once the writers stop.
                await().atMost(WAIT).until(() -> ds.partnership().statistics().sendQueueRecords() == 0
                        && mirrorHolds(pair, writers));
            }
            System.out.printf("high performance: highest send queue seen %d records; %d records shipped%n", highestLag.get(),
                    ds.partnership().statistics().mirrorAppliedRecords());
            assertThat(ds.partnership().status().state()).isEqualTo(MirroringState.SYNCHRONIZING);
            // The shipper trims what both nodes hold as it goes.
            long shipped = ds.partnership().statistics().mirrorAppliedRecords();
            await().atMost(WAIT).until(() -> (Long) value(p, "SELECT count(*) FROM lockstep.journal WHERE epoch > 0") < shipped / 2);
            assertThat(ds.partnership().verify().identical()).isTrue();
            try (Connection m = pair.mirror()) {
                assertThat(value(p, "SELECT count(*) FROM t")).isEqualTo(value(m, "SELECT count(*) FROM t"));
            }
        }
    }

    /**
     * Forced service in HIGH_PERFORMANCE loses what had not shipped; when the old principal comes
     * back, exactly those transactions are in the divergence report, and it is re-seeded.
     */
    @Test
    void forcedServiceReportsExactlyTheTransactionsThatHadNotShipped() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("asyncforced");
        try (LockstepDataSource ds = LockstepDataSource.start(config(pair))) {
            assertThat(TwoNodes.acknowledged(ds, "CREATE TABLE t (id bigint PRIMARY KEY)")).isTrue();
            Set<Long> acknowledged;
            try (Writers writers = Writers.start(ds, 2)) {
                await().atMost(WAIT).until(() -> ds.partnership().statistics().mirrorAppliedRecords() >= 300);
                // The mirror stalls: shipping stops while the principal keeps committing.
                nodes.b().freeze();
                try {
                    int atFreeze = writers.count();
                    await().atMost(WAIT).until(() -> writers.count() >= atFreeze + 300);
                    writers.stop();
                    acknowledged = writers.acknowledged();
                    nodes.a().kill();
                } finally {
                    nodes.b().thaw();
                }
            }
            Set<Long> unshipped;
            try {
                await().atMost(WAIT).ignoreExceptions().until(() -> ds.partnership().forceService(true).epoch() == 2);
                try (Connection b = pair.mirror()) {
                    unshipped = new HashSet<>(acknowledged);
                    unshipped.removeAll(Writers.ids(b));
                }
                assertThat(unshipped).isNotEmpty();
                assertThat(TwoNodes.acknowledged(ds, "INSERT INTO t VALUES (-1)")).isTrue();
            } finally {
                nodes.a().restart();
            }
            assertThat(ds.partnership().resume().state()).isEqualTo(MirroringState.SYNCHRONIZING);
            await().atMost(WAIT).until(() -> !ds.partnership().divergenceReport().isEmpty()
                    && ds.partnership().statistics().sendQueueRecords() == 0 && ds.partnership().verify().identical());

            List<DivergentTransaction> report = ds.partnership().divergenceReport();
            String images = report.stream().map(DivergentTransaction::changes).collect(Collectors.joining());
            Set<Long> reported = acknowledged.stream().filter(id -> images.contains("\"(" + id + ")\"")).collect(Collectors.toSet());
            assertThat(reported).isEqualTo(unshipped);
            assertThat(report).hasSize(unshipped.size()).allSatisfy(d -> {
                assertThat(d.node()).isEqualTo("node-a");
                assertThat(d.epoch()).isEqualTo(1L);
                assertThat(d.principal()).isEqualTo("node-b");
            });
            try (Connection a = pair.principal(); Connection b = pair.mirror()) {
                assertThat(Writers.ids(a)).containsExactlyInAnyOrderElementsOf(Writers.ids(b)).doesNotContainAnyElementsOf(unshipped);
            }
        }
    }
}
