package dev.lockstep.commit;

import dev.lockstep.core.MirroringState;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Duration;

/**
 * The mirroring state a principal keeps about its own mirror, for partnerships without a
 * witness: recorded before the principal first commits alone, read by every coordinator.
 */
public final class PrincipalState {

    private PrincipalState() {
    }

    /**
     * The state a principal records and how many changes of it came before.
     *
     * @param state  the mirroring state
     * @param change the number of changes so far
     */
    public record Seen(MirroringState state, long change) {
    }

    /**
     * Reads the state the principal recorded.
     *
     * @param principal a connection to the principal (autocommit off; rolled back afterwards)
     * @param timeout   deadline of the call
     * @return the state
     * @throws SQLException when the node cannot be read
     */
    public static MirroringState read(Connection principal, Duration timeout) throws SQLException {
        return readSeen(principal, timeout).state();
    }

    /**
     * Reads the state the principal recorded with its change count, for {@link #recordIf}.
     *
     * @param principal a connection to the principal (autocommit off; rolled back afterwards)
     * @param timeout   deadline of the call
     * @return what the principal records
     * @throws SQLException when the node cannot be read
     */
    public static Seen readSeen(Connection principal, Duration timeout) throws SQLException {
        try (java.sql.Statement st = principal.createStatement()) {
            // Never queue behind a cut-over or role change for long: the caller's heartbeat waits.
            st.execute("SET LOCAL lock_timeout = '100ms'");
        }
        try (PreparedStatement ps = principal.prepareStatement("SELECT mirroring_state, mirroring_change FROM lockstep.node_state")) {
            ps.setQueryTimeout(Nodes.seconds(timeout));
            try (ResultSet rs = ps.executeQuery()) {
                if (!rs.next()) {
                    throw new SQLException("lockstep: node has no node state", "55000");
                }
                return new Seen(MirroringState.valueOf(rs.getString(1)), rs.getLong(2));
            }
        } finally {
            principal.rollback();
        }
    }

    /**
     * Records a new state only if nothing changed it since {@code seen} was read.
     *
     * @param principal a connection to the principal (autocommit off; committed)
     * @param epoch     the epoch the caller acts in
     * @param state     the new state
     * @param seen      what the caller read
     * @param timeout   deadline of the call
     * @return false when it changed meanwhile or the node is no longer principal at that epoch
     * @throws SQLException when the node cannot be written
     */
    public static boolean recordIf(Connection principal, long epoch, MirroringState state, Seen seen, Duration timeout)
            throws SQLException {
        return update(principal, epoch, state, seen.change(), timeout);
    }

    /**
     * Records a new state, if the node is still principal at the epoch.
     *
     * @param principal a connection to the principal (autocommit off; committed)
     * @param epoch     the epoch the caller acts in
     * @param state     the new state
     * @param timeout   deadline of the call
     * @return false when the node is no longer principal at that epoch
     * @throws SQLException when the node cannot be written
     */
    public static boolean record(Connection principal, long epoch, MirroringState state, Duration timeout) throws SQLException {
        return update(principal, epoch, state, null, timeout);
    }

    private static boolean update(Connection principal, long epoch, MirroringState state, Long expectedChange, Duration timeout)
            throws SQLException {
        try (PreparedStatement ps = principal.prepareStatement("SELECT lockstep.record_mirroring_state(?, ?, ?)")) {
            ps.setQueryTimeout(Nodes.seconds(timeout));
            ps.setLong(1, epoch);
            ps.setString(2, state.name());
            ps.setObject(3, expectedChange, java.sql.Types.BIGINT);
            boolean recorded;
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                recorded = rs.getBoolean(1);
            }
            principal.commit();
            return recorded;
        } catch (SQLException e) {
            principal.rollback();
            throw e;
        }
    }
}
