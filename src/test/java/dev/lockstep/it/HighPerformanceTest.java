package dev.lockstep.it;

import dev.lockstep.LockstepConfig;
import dev.lockstep.LockstepDataSource;
import dev.lockstep.core.MirroringState;
import dev.lockstep.core.OperatingMode;
import org.junit.jupiter.api.Test;

import java.sql.Connection;
import java.time.Duration;
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
}
