package dev.lockstep.commit;

import dev.lockstep.core.Gid;
import dev.lockstep.core.NodeRole;
import dev.lockstep.jdbc.SqlStates;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * The node-level steps of a role change. The exclusive lock of {@code lockstep.change_role} waits
 * for every transaction that read the node's old role, prepared ones included, so a node's
 * prepared Lockstep transactions are settled before its role changes.
 */
public final class NodeRoleChange {

    private static final int ATTEMPTS = 5;

    private NodeRoleChange() {
    }

    /**
     * Promotes a mirror to principal at {@code newEpoch}. It first commits every Lockstep
     * transaction of the partnership it holds prepared from an older epoch: the principal prepared
     * each of them first and may have committed and acknowledged it, and it cannot be asked.
     * Idempotent: a node already principal at {@code newEpoch} is left as it is.
     *
     * @param c           a connection to the node, autocommit on
     * @param partnership the partnership
     * @param node        the node's name, for messages
     * @param newEpoch    the epoch it takes
     * @param lockTimeout how long each attempt waits for the node's role lock
     * @return the gids committed
     * @throws SQLException when the node is fenced at a higher epoch (25006) or stays busy (55P03)
     */
    public static List<String> promote(Connection c, String partnership, String node, long newEpoch, Duration lockTimeout)
            throws SQLException {
        List<String> committed = new ArrayList<>();
        SQLException last = null;
        for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
            if (alreadyAt(c, node, NodeRole.PRINCIPAL, newEpoch)) {
                return committed;
            }
            for (String gid : prepared(c, partnership, newEpoch)) {
                try (Statement st = c.createStatement()) {
                    st.execute("COMMIT PREPARED " + Nodes.quoted(gid));
                    committed.add(gid);
                } catch (SQLException e) {
                    if (!"42704".equals(e.getSQLState())) {
                        throw e;
                    }
                }
            }
            try {
                changeRole(c, NodeRole.PRINCIPAL, newEpoch, lockTimeout);
                return committed;
            } catch (SQLException e) {
                if (!"55P03".equals(e.getSQLState())) {
                    throw e;
                }
                last = e;
            }
        }
        throw SqlStates.error("55P03", "lockstep: node " + node + " could not take epoch " + newEpoch
                + " as principal: its role stayed locked by open or prepared transactions", last);
    }

    /**
     * Makes a returning principal a mirror at {@code newEpoch}. Its prepared Lockstep transactions
     * must have been settled first. Idempotent.
     *
     * @param c           a connection to the node, autocommit on
     * @param node        the node's name, for messages
     * @param newEpoch    the epoch it takes
     * @param lockTimeout how long to wait for the node's role lock
     * @throws SQLException when the node is at a higher epoch (25006) or busy (55P03)
     */
    public static void demote(Connection c, String node, long newEpoch, Duration lockTimeout) throws SQLException {
        if (!alreadyAt(c, node, NodeRole.MIRROR, newEpoch)) {
            changeRole(c, NodeRole.MIRROR, newEpoch, lockTimeout);
        }
    }

    /**
     * Settles the Lockstep transactions a returning principal holds prepared from before the
     * failover: committed on the new principal (committed there, or by its promotion) means
     * commit; absent there means the transaction never committed anywhere, so its gid is barred
     * on the new principal and it is rolled back.
     *
     * @param returning   a connection to the returning node, autocommit on
     * @param principal   a connection to the new principal, autocommit on
     * @param partnership the partnership
     * @param newEpoch    the new principal's epoch
     * @return how many were committed and rolled back, in that order
     * @throws SQLException when either node fails
     */
    public static int[] settleReturning(Connection returning, Connection principal, String partnership, long newEpoch)
            throws SQLException {
        int committed = 0;
        int rolledBack = 0;
        for (String gid : prepared(returning, partnership, newEpoch)) {
            if (ask(principal, "SELECT lockstep.committed(?)", gid)) {
                committed += finish(returning, "COMMIT PREPARED", gid);
            } else if (ask(principal, "SELECT lockstep.bar(?)", gid)) {
                rolledBack += finish(returning, "ROLLBACK PREPARED", gid);
            } else {
                throw SqlStates.error("55P03", "lockstep: transaction " + gid + " is busy on the new principal; it cannot be settled yet", null);
            }
        }
        return new int[] {committed, rolledBack};
    }

    private static boolean ask(Connection c, String sql, String gid) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement(sql)) {
            ps.setString(1, gid);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getBoolean(1);
            }
        }
    }

    private static int finish(Connection c, String command, String gid) throws SQLException {
        try (Statement st = c.createStatement()) {
            st.execute(command + " " + Nodes.quoted(gid));
            return 1;
        } catch (SQLException e) {
            if ("42704".equals(e.getSQLState())) {
                return 0;
            }
            throw e;
        }
    }

    private static boolean alreadyAt(Connection c, String node, NodeRole role, long epoch) throws SQLException {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT role, epoch FROM lockstep.node_state")) {
            if (!rs.next()) {
                throw SqlStates.error(SqlStates.NOT_READY, "lockstep: node " + node + " has no node state", null);
            }
            long current = rs.getLong(2);
            if (current > epoch) {
                throw SqlStates.error(SqlStates.FENCED, "lockstep: node " + node + " is already at epoch " + current
                        + ", past the epoch " + epoch + " of this role change", null);
            }
            return current == epoch && role.sqlName().equals(rs.getString(1));
        }
    }

    private static List<String> prepared(Connection c, String partnership, long newEpoch) throws SQLException {
        List<String> gids = new ArrayList<>();
        try (PreparedStatement ps = c.prepareStatement(
                "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND starts_with(gid, ?) ORDER BY prepared")) {
            ps.setString(1, Gid.prefixOf(partnership));
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    Gid gid = Gid.parseOrNull(rs.getString(1));
                    if (gid != null && gid.epoch() < newEpoch) {
                        gids.add(rs.getString(1));
                    }
                }
            }
        }
        return gids;
    }

    private static void changeRole(Connection c, NodeRole role, long epoch, Duration lockTimeout) throws SQLException {
        c.setAutoCommit(false);
        try (Statement st = c.createStatement()) {
            st.execute("SET LOCAL lock_timeout = '" + Math.max(1, lockTimeout.toMillis()) + "ms'");
            st.execute("SELECT lockstep.change_role('" + role.sqlName() + "', " + epoch + ")");
            c.commit();
        } catch (SQLException e) {
            c.rollback();
            throw e;
        } finally {
            c.setAutoCommit(true);
        }
    }
}
