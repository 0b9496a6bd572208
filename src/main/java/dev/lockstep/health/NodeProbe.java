package dev.lockstep.health;

import io.github.resilience4j.timelimiter.TimeLimiter;
import io.github.resilience4j.timelimiter.TimeLimiterConfig;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeoutException;

/**
 * Probes one node over a dedicated connection, bounded by a time limiter. The probe reads when the
 * node's server started and its database's oid, so that a restart between two probes, or a
 * database replaced (dropped and restored), shows.
 * The connection is opened on demand and dropped after any failure. The connection itself must
 * carry a socket timeout, so that a probe stuck on a frozen node also ends on its own.
 */
public final class NodeProbe implements AutoCloseable {

    /** Opens a connection to the node, with connect and socket timeouts set. */
    @FunctionalInterface
    public interface Connector {
        /**
         * @return a new connection
         * @throws SQLException when the node cannot be reached
         */
        Connection open() throws SQLException;
    }

    private final String node;
    private final Connector connector;
    private final TimeLimiter limiter;
    private final ExecutorService worker;
    private Future<String> inFlight;
    private volatile Connection connection;

    /**
     * @param node      the node's name
     * @param connector opens connections to it
     * @param deadline  how long one probe may take
     */
    public NodeProbe(String node, Connector connector, Duration deadline) {
        this.node = node;
        this.connector = connector;
        this.limiter = TimeLimiter.of("lockstep-probe-" + node,
                TimeLimiterConfig.custom().timeoutDuration(deadline).cancelRunningFuture(true).build());
        this.worker = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "lockstep-probe-" + node);
            t.setDaemon(true);
            return t;
        });
    }

    /** The node's name. */
    public String node() {
        return node;
    }

    /**
     * Runs one probe; never blocks longer than the deadline. While an earlier probe is still
     * stuck (a frozen node holds its socket read), the node counts as silent.
     *
     * @return what the probe saw
     */
    public synchronized ProbeResult probe() {
        if (inFlight != null && !inFlight.isDone()) {
            return new ProbeResult(false, false, "the previous probe of " + node + " is still waiting for an answer");
        }
        try {
            String incarnation = limiter.executeFutureSupplier(() -> {
                inFlight = worker.submit(this::incarnation);
                return inFlight;
            });
            return ProbeResult.answered(incarnation);
        } catch (ExecutionException e) {
            return ProbeResult.failed(e.getCause());
        } catch (TimeoutException e) {
            return ProbeResult.failed(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return new ProbeResult(false, false, "interrupted");
        } catch (Exception e) {
            return ProbeResult.failed(e);
        }
    }

    private String incarnation() throws SQLException {
        try {
            if (connection == null) {
                connection = connector.open();
            }
            try (Statement st = connection.createStatement();
                 ResultSet rs = st.executeQuery("SELECT extract(epoch FROM pg_postmaster_start_time())::text || ' ' || oid"
                         + " FROM pg_database WHERE datname = current_database()")) {
                rs.next();
                return rs.getString(1);
            }
        } catch (SQLException | RuntimeException e) {
            dropConnection();
            throw e;
        }
    }

    private void dropConnection() {
        Connection c = connection;
        if (c != null) {
            try {
                c.close();
            } catch (SQLException ignored) {
                // The connection is broken already.
            }
            connection = null;
        }
    }

    /** Stops probing and closes the connection, also under a probe stuck on a frozen node. */
    @Override
    public void close() {
        worker.shutdownNow();
        dropConnection();
    }
}
