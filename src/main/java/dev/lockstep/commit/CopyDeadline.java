package dev.lockstep.commit;

import dev.lockstep.jdbc.SqlStates;
import org.postgresql.PGConnection;

import java.sql.Connection;
import java.sql.SQLException;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Bounds a whole seed rather than each of its statements: when the deadline passes while the copy
 * runs, whatever runs on the connections is cancelled and the copy may no longer commit. A cancel
 * that reaches a connection between statements is lost, so the copy also {@link #check}s between
 * steps; once it {@link #beginCommit begins to commit} it is never cancelled.
 */
final class CopyDeadline implements AutoCloseable {

    private enum State { RUNNING, COMMITTING, EXPIRED }

    private final ScheduledExecutorService timer;
    private final AtomicReference<State> state = new AtomicReference<>(State.RUNNING);
    private final Duration limit;

    CopyDeadline(Duration limit, List<Connection> connections) {
        this.limit = limit;
        this.timer = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "lockstep-seed-deadline");
            t.setDaemon(true);
            return t;
        });
        timer.schedule(() -> {
            if (state.compareAndSet(State.RUNNING, State.EXPIRED)) {
                connections.forEach(CopyDeadline::cancelQuietly);
            }
        }, limit.toNanos(), TimeUnit.NANOSECONDS);
    }

    /** Whether the deadline passed while the copy ran: it must not be committed. */
    boolean expired() {
        return state.get() == State.EXPIRED;
    }

    /** Fails once the deadline has passed. */
    void check() throws SQLException {
        if (expired()) {
            throw SqlStates.error(SqlStates.QUERY_CANCELED, "the deadline passed", null);
        }
    }

    /** Ends the running phase: false when the deadline passed first; from true on, nothing is cancelled. */
    boolean beginCommit() {
        return state.compareAndSet(State.RUNNING, State.COMMITTING);
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

    /** Stops the timer and waits for a cancel under way, so that it cannot reach a later statement. */
    @Override
    public void close() {
        timer.shutdownNow();
        try {
            timer.awaitTermination(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
