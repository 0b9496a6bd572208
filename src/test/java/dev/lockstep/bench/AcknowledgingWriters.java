package dev.lockstep.bench;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/** Threads inserting unique ids, remembering when each acknowledged insert committed and where. */
final class AcknowledgingWriters {
    final Map<Long, Long> acknowledged = new ConcurrentHashMap<>();
    final Map<String, AtomicLong> firstAck = new ConcurrentHashMap<>();
    final AtomicLong failures = new AtomicLong();
    private final AtomicLong ids = new AtomicLong();
    private final AtomicBoolean stop = new AtomicBoolean();
    private final ExecutorService threads;

    AcknowledgingWriters(javax.sql.DataSource ds, int count) {
        threads = Executors.newFixedThreadPool(count);
        for (int i = 0; i < count; i++) {
            threads.submit(() -> write(ds));
        }
    }

    private void write(javax.sql.DataSource ds) {
        while (!stop.get()) {
            long id = ids.incrementAndGet();
            try (Connection c = ds.getConnection(); PreparedStatement ps = c.prepareStatement(
                    "INSERT INTO t (id, node) SELECT ?, node_name FROM lockstep.node_state RETURNING node")) {
                ps.setLong(1, id);
                String node;
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    node = rs.getString(1);
                }
                long now = System.nanoTime();
                acknowledged.put(id, now);
                firstAck.computeIfAbsent(node, n -> new AtomicLong()).compareAndSet(0, now);
            } catch (SQLException e) {
                failures.incrementAndGet();
            }
        }
    }

    long firstOnNanos(String node) {
        AtomicLong first = firstAck.get(node);
        return first == null ? 0 : first.get();
    }

    void stop() throws InterruptedException {
        stop.set(true);
        threads.shutdown();
        if (!threads.awaitTermination(60, TimeUnit.SECONDS)) {
            threads.shutdownNow();
        }
    }
}
