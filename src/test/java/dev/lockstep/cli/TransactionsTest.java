package dev.lockstep.cli;

import org.junit.jupiter.api.Test;

import java.lang.reflect.Proxy;
import java.sql.Connection;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class TransactionsTest {

    /** A connection that records commit and rollback calls and fails the first commits with the given states. */
    private static Connection connection(List<String> calls, String... commitFailures) {
        AtomicInteger commits = new AtomicInteger();
        return (Connection) Proxy.newProxyInstance(TransactionsTest.class.getClassLoader(), new Class<?>[] {Connection.class},
                (proxy, method, args) -> {
                    calls.add(method.getName());
                    if (method.getName().equals("commit")) {
                        int n = commits.getAndIncrement();
                        if (n < commitFailures.length) {
                            // Lockstep wraps the node's error; the state may sit on the cause.
                            throw new SQLException("lockstep: rolled back", "XX000", new SQLException("conflict", commitFailures[n]));
                        }
                    }
                    return null;
                });
    }

    @Test
    void retriesSerializationFailuresAndDeadlocksThenCommits() throws SQLException {
        List<String> calls = new ArrayList<>();
        AtomicInteger runs = new AtomicInteger();

        int retries = Transactions.commitWithRetry(connection(calls, "40001", "40P01"), 5, runs::incrementAndGet);

        assertThat(retries).isEqualTo(2);
        assertThat(runs).hasValue(3);
        assertThat(calls).containsExactly("commit", "rollback", "commit", "rollback", "commit");
    }

    @Test
    void doesNotRetryOtherFailuresNorBeyondTheLimit() {
        List<String> calls = new ArrayList<>();
        assertThatThrownBy(() -> Transactions.commitWithRetry(connection(calls, "40003"), 5, () -> { }))
                .isInstanceOf(SQLException.class);
        assertThat(calls).containsExactly("commit", "rollback");

        List<String> limited = new ArrayList<>();
        assertThatThrownBy(() -> Transactions.commitWithRetry(connection(limited, "40001", "40001", "40001"), 2, () -> { }))
                .isInstanceOf(SQLException.class);
        assertThat(limited).containsExactly("commit", "rollback", "commit", "rollback");
    }

    @Test
    void latencyPercentilesUseNearestRankOverAllRecorders() {
        LatencyRecorder a = new LatencyRecorder();
        LatencyRecorder b = new LatencyRecorder();
        for (int i = 1; i <= 50; i++) {
            a.record(i * 1_000_000L);
            b.record((50 + i) * 1_000_000L);
        }

        LatencyRecorder all = LatencyRecorder.merge(List.of(a, b));

        assertThat(all.count()).isEqualTo(100);
        assertThat(all.percentileMillis(50)).isEqualTo(50.0);
        assertThat(all.percentileMillis(99)).isEqualTo(99.0);
        assertThat(new LatencyRecorder().percentileMillis(99)).isZero();
    }
}
