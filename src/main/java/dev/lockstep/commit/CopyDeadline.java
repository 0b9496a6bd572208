package dev.lockstep.commit;

import org.postgresql.PGConnection;

import java.sql.Connection;
import java.sql.SQLException;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Bounds a whole seed rather than each of its statements: when the deadline passes, whatever runs
 * on the connections is cancelled, and {@link #expired()} tells the caller not to commit.
 */
final class CopyDeadline implements AutoCloseable {

    private final ScheduledExecutorService timer;
    private final AtomicBoolean expired = new AtomicBoolean();
    private final Duration limit;

    CopyDeadline(Duration limit, List<Connection> connections) {
        this.limit = limit;
        this.timer = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "lockstep-seed-deadline");
            t.setDaemon(true);
            return t;
        });
        timer.schedule(() -> {
            expired.set(true);
            connections.forEach(CopyDeadline::cancelQuietly);
        }, limit.toNanos(), TimeUnit.NANOSECONDS);
    }

    /** Whether the deadline passed: the copy must not be committed. */
    boolean expired() {
        return expired.get();
    }

    /** The limit, for messages. */
    Duration limit() {
        return limit;
    }

    private static void cancelQuietly(Connection c) {
        try {
            c.unwrap(PGConnection.class).cancelQuery();
        } catch (SQLException ignored) {
            // The connection is gone: its statement ended with it.
        }
    }

    @Override
    public void close() {
        timer.shutdownNow();
    }
}
