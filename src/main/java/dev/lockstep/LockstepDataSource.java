package dev.lockstep;

import dev.lockstep.jdbc.SqlStates;

import javax.sql.DataSource;
import java.io.PrintWriter;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.SQLFeatureNotSupportedException;
import java.util.logging.Logger;

/**
 * A {@link DataSource} whose connections go to the principal and whose commits are mirrored, in
 * lockstep, to the mirror. Connections behave like ordinary PostgreSQL JDBC connections
 * (autocommit on or off, savepoints, batches, generated keys, {@code unwrap} to the pgjdbc
 * connection for COPY); a commit returns only once the transaction is durable on both nodes.
 *
 * <pre>{@code
 * try (LockstepDataSource ds = LockstepDataSource.start(config)) {
 *     try (Connection c = ds.getConnection()) { ... }
 * }
 * }</pre>
 */
public final class LockstepDataSource implements DataSource, AutoCloseable {

    private final Coordinator coordinator;
    private final Partnership partnership;
    private volatile boolean closed;

    private LockstepDataSource(Coordinator coordinator) {
        this.coordinator = coordinator;
        this.partnership = new Partnership(this, coordinator);
    }

    /**
     * Starts a coordinator for the configured partnership: checks both nodes (reachable,
     * {@code max_prepared_transactions > 0}, allowed to set {@code session_replication_role}),
     * installs the node schema if configured, checks that both agree on roles and epoch and
     * settles in-doubt transactions.
     *
     * @param config the configuration
     * @return a started data source
     * @throws SQLException 08001 when a node cannot be reached, 55000 or 42501 when a node is not
     *                      fit; the message names the node and the setting
     */
    public static LockstepDataSource start(LockstepConfig config) throws SQLException {
        return new LockstepDataSource(Coordinator.start(config));
    }

    /** The partnership this data source mirrors. */
    public Partnership partnership() {
        return partnership;
    }

    /** The configuration it was started with. */
    public LockstepConfig config() {
        return coordinator.config();
    }

    @Override
    public Connection getConnection() throws SQLException {
        if (closed) {
            throw SqlStates.error("08003", "lockstep: the data source of partnership " + coordinator.config().partnership() + " is closed", null);
        }
        return coordinator.principalConnection();
    }

    /** Not supported: credentials are part of the node configuration. */
    @Override
    public Connection getConnection(String username, String password) throws SQLException {
        throw new SQLFeatureNotSupportedException("lockstep: credentials are set per node in LockstepConfig", SqlStates.NOT_SUPPORTED);
    }

    @Override
    public PrintWriter getLogWriter() {
        return null;
    }

    @Override
    public void setLogWriter(PrintWriter out) {
        // Lockstep logs through SLF4J.
    }

    @Override
    public void setLoginTimeout(int seconds) {
        // Set connectTimeout in LockstepConfig instead.
    }

    @Override
    public int getLoginTimeout() {
        return (int) coordinator.config().connectTimeout().toSeconds();
    }

    @Override
    public Logger getParentLogger() throws SQLFeatureNotSupportedException {
        throw new SQLFeatureNotSupportedException("lockstep logs through SLF4J");
    }

    @Override
    public <T> T unwrap(Class<T> iface) throws SQLException {
        if (iface.isInstance(this)) {
            return iface.cast(this);
        }
        throw new SQLException("lockstep: not a wrapper for " + iface.getName(), SqlStates.NOT_SUPPORTED);
    }

    @Override
    public boolean isWrapperFor(Class<?> iface) {
        return iface.isInstance(this);
    }

    /** Waits for background mirror commits, then closes both pools. */
    @Override
    public void close() {
        if (!closed) {
            closed = true;
            coordinator.close();
        }
    }
}
