package dev.lockstep.testing;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One real PostgreSQL server for tests, with a {@link TcpProxy} in front of it and fault
 * controls: {@link #kill()}, {@link #freeze()}/{@link #thaw()}, {@link #stop()},
 * {@link #restart()}, and network faults on {@link #proxy()}.
 *
 * <p>The server is embedded (zonky's PostgreSQL 18 binaries, run as a local process) unless a
 * Docker engine is present, in which case it is a {@code postgres:18} container; the system
 * property {@code lockstep.test.backend=embedded|docker} forces one. Code under test should use
 * {@link #jdbcUrl(String)}, through the proxy, so that network faults reach it; tests check and
 * set up state with {@link #connectDirect(String)}.
 *
 * <p>Every server gets {@code max_prepared_transactions=64}, {@code max_connections=120} and
 * {@code synchronous_commit=on}; the embedded one listens on 127.0.0.1 only. Tests share a
 * server and isolate themselves with {@link #createDatabase(String)}.
 *
 * <pre>{@code
 * try (PgNode node = PgNode.start("principal")) {
 *     String db = node.createDatabase("orders");
 *     try (Connection c = DriverManager.getConnection(node.jdbcUrl(db), node.user(), node.password())) { ... }
 *     node.kill();
 *     node.restart();
 * }
 * }</pre>
 *
 * All methods are thread-safe.
 */
public final class PgNode implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(PgNode.class);
    private static final String HOST = "127.0.0.1";
    private static final int MAX_DATABASE_PREFIX = 40;
    /** Settings every node gets unless the caller's serverConfig overrides them. */
    private static final Map<String, String> DEFAULT_SETTINGS = Map.of(
            "max_prepared_transactions", "64", // Lockstep commits with two-phase commit
            "max_connections", "120",
            // zonky's default is off: a kill() could then lose commits that were acknowledged.
            "synchronous_commit", "on");

    private final String name;
    private final PgServerBackend backend;
    private final TcpProxy proxy;
    private final AtomicInteger databases = new AtomicInteger();
    private boolean frozen;
    private boolean closed;

    private PgNode(String name, PgServerBackend backend, TcpProxy proxy) {
        this.name = name;
        this.backend = backend;
        this.proxy = proxy;
    }

    /** Starts a node with the default server settings; returns once it accepts connections. */
    public static PgNode start(String name) {
        return start(name, Map.of());
    }

    /**
     * Starts a node; returns once it accepts connections.
     *
     * @param name         names the node in logs, thread names and its directory
     * @param serverConfig postgresql.conf settings that add to or override the defaults,
     *                     e.g. {@code Map.of("max_prepared_transactions", "0")}
     */
    public static PgNode start(String name, Map<String, String> serverConfig) {
        long started = System.nanoTime();
        Map<String, String> settings = new HashMap<>(DEFAULT_SETTINGS);
        settings.putAll(serverConfig);
        PgServerBackend backend = PgServerBackend.start(name, settings);
        TcpProxy proxy;
        try {
            proxy = TcpProxy.start(name, backend.host(), backend.port());
        } catch (RuntimeException e) {
            backend.close();
            throw e;
        }
        log.info("node {}: started on port {}, proxy on port {} ({} ms)",
                name, backend.port(), proxy.port(), (System.nanoTime() - started) / 1_000_000);
        return new PgNode(name, backend, proxy);
    }

    public String name() {
        return name;
    }

    /** Host of the proxy: always 127.0.0.1. */
    public String host() {
        return HOST;
    }

    /** The real server's port. Embedded: never changes. Docker: may change on restart(). */
    public synchronized int serverPort() {
        return backend.port();
    }

    /** Port of the proxy in front of the server; never changes. */
    public int proxyPort() {
        return proxy.port();
    }

    /** {@code jdbc:postgresql://127.0.0.1:<proxyPort>/<database>}: through the proxy. */
    public String jdbcUrl(String database) {
        return "jdbc:postgresql://" + HOST + ":" + proxy.port() + "/" + database;
    }

    /** JDBC URL straight to the server, bypassing the proxy and its faults. */
    public synchronized String directJdbcUrl(String database) {
        return "jdbc:postgresql://" + backend.host() + ":" + backend.port() + "/" + database;
    }

    /** Superuser name. */
    public String user() {
        return backend.user();
    }

    /** Superuser password (the embedded server trusts local connections and ignores it). */
    public String password() {
        return backend.password();
    }

    /** A superuser connection through the proxy, with the driver's default settings. */
    public Connection connect(String database) throws SQLException {
        return DriverManager.getConnection(jdbcUrl(database), user(), password());
    }

    /**
     * A superuser connection straight to the server. It gives up after 10 s (a frozen server
     * accepts TCP connections and then never answers).
     */
    public Connection connectDirect(String database) throws SQLException {
        Properties props = new Properties();
        props.setProperty("user", user());
        props.setProperty("password", password());
        props.setProperty("connectTimeout", "5");
        props.setProperty("loginTimeout", "10");
        return DriverManager.getConnection(directJdbcUrl(database), props);
    }

    /**
     * Creates a database with a unique name that starts with {@code prefix} (lower-cased, other
     * characters than letters, digits and '_' replaced) and returns that name.
     */
    public String createDatabase(String prefix) {
        String base = prefix.toLowerCase(Locale.ROOT).replaceAll("[^a-z0-9_]", "_");
        if (base.isEmpty() || Character.isDigit(base.charAt(0))) {
            base = "db_" + base;
        }
        base = base.substring(0, Math.min(base.length(), MAX_DATABASE_PREFIX));
        String database = base + "_" + databases.incrementAndGet();
        try (Connection c = connectDirect("postgres"); Statement s = c.createStatement()) {
            s.execute("CREATE DATABASE \"" + database + "\"");
        } catch (SQLException e) {
            throw new IllegalStateException("node " + name + ": could not create database " + database, e);
        }
        return database;
    }

    /**
     * A machine crash: SIGKILL of the postmaster and every process below it (a container: docker
     * kill). Returns once none of them is left. Open connections break; new ones are refused.
     */
    public synchronized void kill() {
        ensureOpen();
        backend.kill();
        frozen = false;
        log.info("node {}: killed", name);
    }

    /**
     * A hung machine: SIGSTOP of the postmaster and every process below it (a container: docker
     * pause). TCP connections are still accepted by the kernel, but nothing answers.
     */
    public synchronized void freeze() {
        ensureOpen();
        backend.freeze();
        frozen = true;
        log.info("node {}: frozen", name);
    }

    /** Resumes a frozen server (SIGCONT; a container: docker unpause). */
    public synchronized void thaw() {
        ensureOpen();
        backend.thaw();
        frozen = false;
        log.info("node {}: thawed", name);
    }

    /**
     * Starts the server again, after {@link #kill()} or {@link #stop()}, on the same data (crash
     * recovery runs after a kill) and, embedded, the same port. Returns when it accepts
     * connections. A container may come back on another port; the proxy follows it.
     *
     * @throws IllegalStateException when the server is running
     */
    public synchronized void restart() {
        ensureOpen();
        long started = System.nanoTime();
        backend.restart();
        if (backend.port() != proxy.targetPort()) {
            proxy.retarget(backend.port());
        }
        log.info("node {}: restarted on port {} ({} ms)", name, backend.port(),
                (System.nanoTime() - started) / 1_000_000);
    }

    /** Clean shutdown ({@code pg_ctl stop -m fast}: sessions are disconnected, then a checkpoint). */
    public synchronized void stop() {
        ensureOpen();
        if (frozen) {
            backend.thaw();
            frozen = false;
        }
        backend.stop();
        log.info("node {}: stopped", name);
    }

    /** Whether the server's processes exist; a frozen server counts as running. */
    public synchronized boolean isRunning() {
        return !closed && backend.isRunning();
    }

    /** The proxy in front of the server, for network faults. */
    public TcpProxy proxy() {
        return proxy;
    }

    /** Stops the proxy and the server (thawing it first) and deletes its data. Idempotent. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            proxy.close();
            if (frozen) {
                backend.thaw();
            }
        } finally {
            backend.close();
        }
        log.info("node {}: closed", name);
    }

    @Override
    public String toString() {
        return "PgNode[" + name + ", proxy " + HOST + ":" + proxy.port() + "]";
    }

    /** The backend, for tests of this package that look at processes. */
    synchronized PgServerBackend backend() {
        return backend;
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("node " + name + " is closed");
        }
    }
}
