package dev.lockstep.commit;

import dev.lockstep.jdbc.SqlStates;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;

/** The checks a node must pass before a coordinator commits on it. */
public final class NodeChecks {

    private NodeChecks() {
    }

    /**
     * Two-phase commit needs prepared transactions.
     *
     * @param c       a connection to the node
     * @param node    node name for the message
     * @param needed  how many a coordinator may hold at once
     * @throws SQLException 55000 when max_prepared_transactions is below {@code needed}
     */
    public static void requirePreparedTransactions(Connection c, String node, int needed) throws SQLException {
        try (Statement st = c.createStatement();
             ResultSet rs = st.executeQuery("SELECT current_setting('max_prepared_transactions')::int")) {
            rs.next();
            int max = rs.getInt(1);
            if (max < needed) {
                throw SqlStates.error(SqlStates.NOT_READY, "lockstep: node " + node
                        + " has max_prepared_transactions = " + max + "; two-phase commit needs at least one per pooled"
                        + " connection (poolSize = " + needed + "); set it in postgresql.conf and restart the node", null);
            }
        }
    }

    /**
     * The mirror applies changes with {@code session_replication_role = replica}; the role must be
     * allowed to set it. Both nodes are checked, because roles swap on failover.
     *
     * @param c    a connection to the node, autocommit off
     * @param node node name for the message
     * @throws SQLException 42501 when the role may not set it
     */
    public static void requireReplicationRole(Connection c, String node) throws SQLException {
        try (Statement st = c.createStatement()) {
            st.execute("SET LOCAL session_replication_role = replica");
        } catch (SQLException e) {
            throw SqlStates.error(SqlStates.PRIVILEGE, "lockstep: the role '" + currentUser(c, node) + "' on node " + node
                    + " may not set session_replication_role, which the mirror needs to apply changes;"
                    + " connect as a superuser or GRANT SET ON PARAMETER session_replication_role TO that role ("
                    + e.getMessage() + ")", e);
        } finally {
            c.rollback();
        }
    }

    private static String currentUser(Connection c, String node) {
        try {
            c.rollback();
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT current_user")) {
                rs.next();
                return rs.getString(1);
            }
        } catch (SQLException e) {
            return "(unknown on " + node + ")";
        }
    }
}
