package dev.lockstep.cli;

import dev.lockstep.NodeConfig;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;

import java.io.IOException;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A few embedded PostgreSQL servers (zonky's binaries), started in parallel and stopped together.
 * Each is a node of the given name, reached as the superuser {@code postgres} on
 * {@code 127.0.0.1}. The servers run with fsync off (zonky's default), so benchmark numbers
 * against them measure CPU and round trips, not disk flushes.
 */
public final class EmbeddedNodes implements AutoCloseable {

    /** Superuser of the embedded servers; zonky's initdb gives it trust authentication. */
    public static final String SUPERUSER = "postgres";
    private static final Duration START_TIMEOUT = Duration.ofSeconds(60);

    private final List<String> names;
    private final List<EmbeddedPostgres> servers;

    private EmbeddedNodes(List<String> names, List<EmbeddedPostgres> servers) {
        this.names = names;
        this.servers = servers;
    }

    /**
     * Starts one server per name, in parallel, with Lockstep's needs ({@code max_prepared_transactions})
     * and the given server settings.
     *
     * @param names            node names
     * @param maxConnections   {@code max_connections} of each server
     * @param extraSettings    further server settings (may be empty)
     * @return the running servers
     * @throws IOException when a server does not start; the ones that did are stopped again
     */
    public static EmbeddedNodes start(List<String> names, int maxConnections, Map<String, String> extraSettings) throws IOException {
        Map<String, String> settings = new LinkedHashMap<>();
        settings.put("listen_addresses", "127.0.0.1");
        settings.put("max_connections", Integer.toString(maxConnections));
        // Each coordinator connection can hold one prepared transaction on each node.
        settings.put("max_prepared_transactions", Integer.toString(maxConnections));
        settings.putAll(extraSettings);
        ExecutorService starters = Executors.newFixedThreadPool(names.size());
        List<Future<EmbeddedPostgres>> futures = new ArrayList<>();
        try {
            for (int i = 0; i < names.size(); i++) {
                futures.add(starters.submit(() -> startOne(settings)));
            }
            List<EmbeddedPostgres> servers = new ArrayList<>();
            IOException failure = null;
            long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
            for (Future<EmbeddedPostgres> f : futures) {
                try {
                    servers.add(f.get(Math.max(1, deadline - System.nanoTime()), TimeUnit.NANOSECONDS));
                } catch (ExecutionException e) {
                    failure = addFailure(failure, e.getCause());
                } catch (TimeoutException e) {
                    f.cancel(true);
                    failure = addFailure(failure, new IOException("embedded PostgreSQL did not start within " + START_TIMEOUT));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    failure = addFailure(failure, e);
                }
            }
            if (failure != null) {
                servers.forEach(EmbeddedNodes::stopQuietly);
                throw failure;
            }
            return new EmbeddedNodes(List.copyOf(names), List.copyOf(servers));
        } finally {
            starters.shutdownNow();
        }
    }

    private static EmbeddedPostgres startOne(Map<String, String> settings) throws IOException {
        EmbeddedPostgres.Builder b = EmbeddedPostgres.builder().setPGStartupWait(START_TIMEOUT);
        settings.forEach(b::setServerConfig);
        return b.start();
    }

    private static IOException addFailure(IOException failure, Throwable cause) {
        IOException e = cause instanceof IOException io ? io : new IOException("embedded PostgreSQL failed to start: " + cause, cause);
        if (failure == null) {
            return e;
        }
        failure.addSuppressed(e);
        return failure;
    }

    /** How many nodes run. */
    public int size() {
        return servers.size();
    }

    /** The name of node {@code i}. */
    public String name(int i) {
        return names.get(i);
    }

    /** The JDBC URL of node {@code i}'s {@code postgres} database. */
    public String jdbcUrl(int i) {
        return servers.get(i).getJdbcUrl(SUPERUSER, "postgres");
    }

    /** Node {@code i} as Lockstep configures it. */
    public NodeConfig nodeConfig(int i) {
        return NodeConfig.of(names.get(i), jdbcUrl(i), SUPERUSER, "");
    }

    /** A new direct connection (autocommit on) to node {@code i}, not through Lockstep. */
    public Connection connect(int i) throws SQLException {
        return DriverManager.getConnection(jdbcUrl(i), SUPERUSER, "");
    }

    /**
     * Runs one task per node in parallel and waits for all of them, at most {@code timeout}.
     *
     * @throws SQLException the first failure, with the others suppressed
     */
    public void onEachNode(List<Integer> nodes, Duration timeout, NodeTask task) throws SQLException {
        List<CompletableFuture<Void>> runs = new ArrayList<>();
        ExecutorService pool = Executors.newFixedThreadPool(nodes.size());
        try {
            for (int i : nodes) {
                runs.add(CompletableFuture.runAsync(() -> {
                    try (Connection c = connect(i)) {
                        task.run(i, c);
                    } catch (SQLException e) {
                        throw new NodeTaskFailure(names.get(i), e);
                    }
                }, pool));
            }
            long deadline = System.nanoTime() + timeout.toNanos();
            SQLException failure = null;
            for (CompletableFuture<Void> run : runs) {
                try {
                    run.get(Math.max(1, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
                } catch (ExecutionException e) {
                    SQLException cause = e.getCause() instanceof NodeTaskFailure f ? f.sqlCause()
                            : new SQLException("task on a node failed: " + e.getCause(), e.getCause());
                    failure = chain(failure, cause);
                } catch (TimeoutException e) {
                    failure = chain(failure, new SQLException("task on a node did not finish within " + timeout, "57014"));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    failure = chain(failure, new SQLException("interrupted", "57014", e));
                }
            }
            if (failure != null) {
                throw failure;
            }
        } finally {
            pool.shutdownNow();
        }
    }

    private static SQLException chain(SQLException first, SQLException next) {
        if (first == null) {
            return next;
        }
        first.addSuppressed(next);
        return first;
    }

    /** Stops every server. */
    @Override
    public void close() {
        servers.forEach(EmbeddedNodes::stopQuietly);
    }

    private static void stopQuietly(EmbeddedPostgres server) {
        try {
            server.close();
        } catch (IOException e) {
            System.err.println("warning: stopping embedded PostgreSQL on port " + server.getPort() + " failed: " + e);
        }
    }

    /** Work on one node's direct connection. */
    @FunctionalInterface
    public interface NodeTask {
        /**
         * @param node index of the node
         * @param c    a direct connection to it (autocommit on)
         */
        void run(int node, Connection c) throws SQLException;
    }

    private static final class NodeTaskFailure extends RuntimeException {
        NodeTaskFailure(String node, SQLException cause) {
            super("node " + node + ": " + cause.getMessage(), cause);
        }

        SQLException sqlCause() {
            SQLException cause = (SQLException) getCause();
            return new SQLException(getMessage(), cause.getSQLState(), cause);
        }
    }
}
