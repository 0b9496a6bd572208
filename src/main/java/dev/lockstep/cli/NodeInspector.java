package dev.lockstep.cli;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;

/** Reads one node directly (not through Lockstep): table checksums and single numbers. */
public final class NodeInspector {

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
}
