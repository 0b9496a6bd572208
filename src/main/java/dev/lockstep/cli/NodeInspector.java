package dev.lockstep.cli;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

/**
 * Reads one node directly (not through Lockstep): table checksums, single numbers, and whether
 * the mirror still holds prepared transactions whose {@code COMMIT PREPARED} has not run yet.
 */
public final class NodeInspector {

    /** Between two looks at {@code pg_prepared_xacts} while waiting for it to empty. */
    private static final long SETTLE_POLL_MILLIS = 20;

    private NodeInspector() {
    }

    /**
     * A table's checksum on one node, as {@code lockstep.checksum} computes it.
     *
     * @param node   node name
     * @param table  schema-qualified table name
     * @param rows   row count
     * @param digest order-independent digest of the rows
     */
    public record TableChecksum(String node, String table, long rows, String digest) {
        /** Whether the other checksum (of the same table on another node) shows the same rows. */
        public boolean sameRowsAs(TableChecksum other) {
            return table.equals(other.table) && rows == other.rows && digest.equals(other.digest);
        }
    }

    /** {@code SELECT * FROM lockstep.checksum(table)} on the node. */
    public static TableChecksum checksum(Connection c, String node, String table) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT row_count, digest::text FROM lockstep.checksum(?)")) {
            ps.setString(1, table);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return new TableChecksum(node, table, rs.getLong(1), rs.getString(2));
            }
        }
    }

    /** The single number a query returns (0 for SQL NULL). */
    public static long queryLong(Connection c, String sql) throws SQLException {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(sql)) {
            rs.next();
            return rs.getLong(1);
        }
    }

    /**
     * Waits until the node holds no prepared transactions, at most {@code timeout}. Lockstep
     * acknowledges a commit once both nodes hold it prepared and the principal committed it; the
     * mirror's {@code COMMIT PREPARED} follows in the background. Before comparing the nodes, this
     * waits for those to land. The wait polls every {@value #SETTLE_POLL_MILLIS} ms: PostgreSQL
     * offers nothing to block on here.
     *
     * @return whether the node reached zero prepared transactions in time
     */
    public static boolean awaitNoPreparedTransactions(Connection c, Duration timeout) throws SQLException, InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (queryLong(c, "SELECT count(*) FROM pg_prepared_xacts") > 0) {
            if (System.nanoTime() > deadline) {
                return false;
            }
            TimeUnit.MILLISECONDS.sleep(SETTLE_POLL_MILLIS);
        }
        return true;
    }
}
