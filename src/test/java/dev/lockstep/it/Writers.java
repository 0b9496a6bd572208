package dev.lockstep.it;

import javax.sql.DataSource;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Threads that insert unique ids into {@code t (id bigint)} through a data source until stopped,
 * remembering which inserts were acknowledged; failures are skipped as an application would retry.
 */
final class Writers implements AutoCloseable {

    private final Set<Long> acknowledged = ConcurrentHashMap.newKeySet();
    private final AtomicLong failures = new AtomicLong();
    private final java.util.Queue<String> failureMessages = new java.util.concurrent.ConcurrentLinkedQueue<>();
    private final AtomicLong ids = new AtomicLong();
    private final AtomicBoolean stop = new AtomicBoolean();
    private final ExecutorService threads;

    private Writers(DataSource ds, int count, long firstId) {
        ids.set(firstId - 1);
        threads = Executors.newFixedThreadPool(count);
        for (int i = 0; i < count; i++) {
            threads.submit(() -> {
                while (!stop.get()) {
                    long id = ids.incrementAndGet();
                    try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
                        st.executeUpdate("INSERT INTO t (id) VALUES (" + id + ")");
                        acknowledged.add(id);
                    } catch (SQLException e) {
                        // Not acknowledged.
                        failures.incrementAndGet();
                        if (failureMessages.size() < 5) {
                            failureMessages.add(e.getSQLState() + " " + e.getMessage());
                        }
                    }
                }
                return null;
            });
        }
    }

    static Writers start(DataSource ds, int count) {
        return new Writers(ds, count, 1);
    }

    /** Writers whose ids start at {@code firstId}, so that several sets can write one table. */
    static Writers start(DataSource ds, int count, long firstId) {
        return new Writers(ds, count, firstId);
    }

    int count() {
        return acknowledged.size();
    }

    /** The first few failures' SQLSTATEs and messages, for assertion messages. */
    List<String> failureMessages() {
        return List.copyOf(failureMessages);
    }

    /** How many inserts failed so far. */
    long failures() {
        return failures.get();
    }

    Set<Long> acknowledged() {
        return acknowledged;
    }

    /** Stops the writers and waits for them (bounded). */
    void stop() throws InterruptedException {
        stop.set(true);
        threads.shutdown();
        if (!threads.awaitTermination(60, TimeUnit.SECONDS)) {
            throw new IllegalStateException("writers did not stop within 60 s");
        }
    }

    /** The ids a query returns. */
    static List<Long> ids(Connection c) throws SQLException {
        return TwoNodes.rows(c, "SELECT id FROM t").stream().map(r -> (Long) r.get(0)).toList();
    }

    @Override
    public void close() {
        stop.set(true);
        threads.shutdownNow();
    }
}
