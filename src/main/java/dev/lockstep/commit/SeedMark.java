package dev.lockstep.commit;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;

/**
 * The principal's record that its mirror must be seeded rather than caught up, and the test for a
 * blank node (one that holds nothing of the partnership yet). Statements run in the caller's
 * transaction, or in their own under autocommit.
 */
public final class SeedMark {

    private SeedMark() {
    }

    /**
     * Whether the principal records, at its current epoch, that its mirror must be seeded.
     *
     * @param principal a connection to the principal
     */
    public static boolean marked(Connection principal) throws SQLException {
        return bool(principal, "SELECT lockstep.mirror_needs_seeding()");
    }

    /**
     * Records, or clears, the mark on the principal of {@code epoch}.
     *
     * @param principal a connection to the principal
     * @param epoch     the epoch the caller acts in
     * @param needed    true to record, false to clear
     * @return false when the node is no longer principal at that epoch
     */
    public static boolean mark(Connection principal, long epoch, boolean needed) throws SQLException {
        try (PreparedStatement ps = principal.prepareStatement("SELECT lockstep.mark_mirror_for_seeding(?, ?)")) {
            ps.setLong(1, epoch);
            ps.setBoolean(2, needed);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getBoolean(1);
            }
        }
    }

    /** Whether the node holds nothing of the partnership: no attached table, no journal record, never trimmed. */
    public static boolean blank(Connection node) throws SQLException {
        return bool(node, "SELECT lockstep.is_blank()");
    }

    /**
     * Makes a blank mirror a mirror of the principal's epoch (a new node is installed at epoch 1).
     *
     * @param node        a connection to the blank node, autocommit on
     * @param partnership the partnership
     * @param epoch       the principal's epoch
     * @throws SQLException 55000 when the node is not a blank mirror of the partnership
     */
    public static void enrolAsMirror(Connection node, String partnership, long epoch) throws SQLException {
        try (PreparedStatement ps = node.prepareStatement("SELECT lockstep.enrol_as_mirror(?, ?)")) {
            ps.setString(1, partnership);
            ps.setLong(2, epoch);
            ps.executeQuery().close();
        }
    }

    /**
     * Whether the node dropped its journal of an epoch before {@code epoch} at its limit (while it
     * was principal and its mirror away).
     */
    public static boolean droppedJournalBefore(Connection node, long epoch) throws SQLException {
        try (PreparedStatement ps = node.prepareStatement(
                "SELECT journal_dropped_epoch BETWEEN 1 AND ? - 1 FROM lockstep.node_state")) {
            ps.setQueryTimeout(30);
            ps.setLong(1, epoch);
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next() && rs.getBoolean(1);
            }
        }
    }

    /**
     * The position a node's journal reaches: the greater of its newest record and the position
     * below which it trimmed its journal; (0, 0) when it has neither.
     */
    public static JournalReplay.Key heldPosition(Connection node) throws SQLException {
        return key(node, "SELECT epoch, seq FROM (SELECT epoch, seq FROM lockstep.journal WHERE epoch > 0"
                + " UNION ALL SELECT journal_trimmed_epoch, journal_trimmed_seq FROM lockstep.node_state) p"
                + " ORDER BY epoch DESC, seq DESC LIMIT 1");
    }

    /** The newest journal record the node deleted by trimming; (0, 0) when it never did. */
    public static JournalReplay.Key lastTrimmed(Connection node) throws SQLException {
        return key(node, "SELECT journal_trimmed_last_epoch, journal_trimmed_last_seq FROM lockstep.node_state");
    }

    private static JournalReplay.Key key(Connection c, String sql) throws SQLException {
        try (Statement st = c.createStatement()) {
            st.setQueryTimeout(30);
            try (ResultSet rs = st.executeQuery(sql)) {
                return rs.next() ? new JournalReplay.Key(rs.getLong(1), rs.getLong(2)) : new JournalReplay.Key(0, 0);
            }
        }
    }

    private static boolean bool(Connection c, String sql) throws SQLException {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(sql)) {
            rs.next();
            return rs.getBoolean(1);
        }
    }
}
