package dev.lockstep;

import dev.lockstep.core.RowMerge;
import dev.lockstep.jdbc.SqlStates;

import java.sql.Array;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;

/**
 * Verify's connection to one node: the reads verify compares and the writes repair makes, each
 * failure turned into an {@link SQLException} that names the node and the table.
 */
final class NodeLink implements AutoCloseable {

    /** Rows fetched per round trip while streaming a table's row hashes. */
    static final int FETCH_SIZE = 1000;

    private final Connection c;
    private final String role;
    private final String node;

    private NodeLink(Connection c, String role, String node) {
        this.c = c;
        this.role = role;
        this.node = node;
    }

    /**
     * Connects to a node for verify (autocommit off).
     *
     * @throws SQLException 08001 naming the node when it cannot be reached
     */
    static NodeLink open(Coordinator coordinator, NodeConfig node, boolean mirror, VerifyOptions options) throws SQLException {
        Connection c = coordinator.connectForVerify(node, mirror, options.statementTimeout(), options.lockTimeout());
        try {
            c.setAutoCommit(false);
        } catch (SQLException e) {
            c.close();
            throw e;
        }
        return new NodeLink(c, mirror ? "mirror" : "principal", node.name());
    }

    /** "principal node-a". */
    String describe() {
        return role + " node " + node;
    }

    /** A failure of a step on a table, naming this node and the table; the SQLSTATE is kept. */
    SQLException failure(String step, String table, SQLException e) {
        String state = e.getSQLState() != null ? e.getSQLState() : "XX000";
        return SqlStates.error(state, "lockstep: " + step + (table == null ? "" : " of table " + table) + " on " + describe()
                + " failed: " + e.getMessage(), e);
    }

    /** Starts a read-only transaction whose reads all see one snapshot. */
    void beginSnapshot(String table) throws SQLException {
        execute("verify", table, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    }

    /** Ends the transaction under way, if any, without keeping anything. */
    void end() throws SQLException {
        c.rollback();
    }

    void commit(String table) throws SQLException {
        try {
            c.commit();
        } catch (SQLException e) {
            throw failure("repair commit", table, e);
        }
    }

    /** The tables this node mirrors. */
    List<String> attachedTables() throws SQLException {
        List<String> tables = new ArrayList<>();
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT table_name FROM lockstep.attached ORDER BY 1")) {
            while (rs.next()) {
                tables.add(rs.getString(1));
            }
        } catch (SQLException e) {
            throw failure("listing attached tables", null, e);
        } finally {
            end();
        }
        return tables;
    }

    /** The table's definition, object by object; empty when the table does not exist here. */
    Map<String, String> schemaFacts(String table) throws SQLException {
        Map<String, String> facts = new LinkedHashMap<>();
        try (PreparedStatement ps = c.prepareStatement("SELECT object, definition FROM lockstep.schema_facts(?)")) {
            ps.setString(1, table);
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    facts.put(rs.getString(1), rs.getString(2));
                }
            }
        } catch (SQLException e) {
            throw failure("reading the definition", table, e);
        }
        return facts;
    }

    /** The table's columns in order (raw names); empty when it does not exist here. */
    List<String> columns(String table) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT lockstep.column_names(?)")) {
            ps.setString(1, table);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return List.of((String[]) rs.getArray(1).getArray());
            }
        } catch (SQLException e) {
            throw failure("reading the columns", table, e);
        }
    }

    /** The table's primary key columns (raw names, in key order); empty when it has none here. */
    List<String> keyNames(String table) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT coalesce(lockstep.key_names(to_regclass(?)), '{}')")) {
            ps.setString(1, table);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return List.of((String[]) rs.getArray(1).getArray());
            }
        } catch (SQLException e) {
            throw failure("reading the primary key", table, e);
        }
    }

    /** Row count and digest of the table over the given columns. */
    Checksum checksum(String table, List<String> columns) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT row_count, digest::text FROM lockstep.checksum(?, ?)")) {
            ps.setString(1, table);
            ps.setArray(2, textArray(columns));
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return new Checksum(rs.getLong(1), rs.getString(2));
            }
        } catch (SQLException e) {
            throw failure("checksum", table, e);
        }
    }

    /** A table's row count and order-independent digest on one node. */
    record Checksum(long rows, String digest) {
    }

    /**
     * Streams (key, row hash) of the table in key order, a fetch at a time, within the
     * transaction under way; the key is made of the given columns (the principal's primary key).
     */
    RowStream rowHashes(String table, List<String> columns, List<String> keys) throws SQLException {
        String query;
        try (PreparedStatement ps = c.prepareStatement("SELECT lockstep.row_hashes_query(?, ?, ?)")) {
            ps.setString(1, table);
            ps.setArray(2, textArray(columns));
            ps.setArray(3, textArray(keys));
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                query = rs.getString(1);
            }
        } catch (SQLException e) {
            throw failure("comparing rows", table, e);
        }
        Statement st = c.createStatement();
        try {
            st.setFetchSize(FETCH_SIZE);
            return new RowStream(st, st.executeQuery(query), table);
        } catch (SQLException e) {
            st.close();
            throw failure("comparing rows", table, e);
        }
    }

    /** Runs a statement whose result does not matter. */
    void execute(String step, String table, String sql, Object... params) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement(sql)) {
            for (int i = 0; i < params.length; i++) {
                ps.setObject(i + 1, params[i]);
            }
            ps.execute();
        } catch (SQLException e) {
            throw failure(step, table, e);
        }
    }

    /** Takes a table lock for the rest of the transaction, within the lock timeout. */
    void lock(String table, String mode) throws SQLException {
        // The name comes from lockstep.attached, quoted as by quote_ident.
        execute("repair (locking the table in " + mode + " mode)", table, "LOCK TABLE " + table + " IN " + mode + " MODE");
    }

    /** This node's rows for the given keys (a JSON array of key objects), as a JSON array of row texts. */
    String rowsByKey(String table, String keys) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT lockstep.rows_by_key(?, ?::jsonb)::text")) {
            ps.setString(1, table);
            ps.setString(2, keys);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getString(1);
            }
        } catch (SQLException e) {
            throw failure("repair (reading rows)", table, e);
        }
    }

    /** Deletes the keys' rows here, then inserts the given rows; returns {deleted, inserted}. */
    long[] repairRows(String table, String keys, String rows) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT r[1], r[2] FROM (SELECT lockstep.repair_rows(?, ?::jsonb, ?::jsonb) AS r) x")) {
            ps.setString(1, table);
            ps.setString(2, keys);
            ps.setString(3, rows);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return new long[] {rs.getLong(1), rs.getLong(2)};
            }
        } catch (SQLException e) {
            throw failure("repair (writing rows)", table, e);
        }
    }

    /** The position of every sequence the attached tables draw from. */
    Map<String, Long> sequencePositions() throws SQLException {
        Map<String, Long> positions = new LinkedHashMap<>();
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT s, lockstep.sequence_position(s) FROM"
                + " (SELECT DISTINCT unnest(sequences) AS s FROM lockstep.attached) x WHERE to_regclass(s) IS NOT NULL ORDER BY 1")) {
            while (rs.next()) {
                long pos = rs.getLong(2);
                positions.put(rs.getString(1), rs.wasNull() ? null : pos);
            }
        } catch (SQLException e) {
            throw failure("reading sequence positions", null, e);
        } finally {
            end();
        }
        return positions;
    }

    private Array textArray(List<String> values) throws SQLException {
        return c.createArrayOf("text", values.toArray());
    }

    @Override
    public void close() throws SQLException {
        c.close();
    }

    /** A failure while streaming or while acting on a streamed difference, carried through the merge. */
    static final class StreamFailure extends RuntimeException {
        StreamFailure(SQLException cause) {
            super(cause);
        }

        @Override
        public synchronized SQLException getCause() {
            return (SQLException) super.getCause();
        }
    }

    /** One node's (key, row hash) stream for the merge. */
    final class RowStream implements Iterator<RowMerge.KeyedHash>, AutoCloseable {
        private final Statement st;
        private final ResultSet rs;
        private final String table;
        private RowMerge.KeyedHash next;
        private boolean done;

        RowStream(Statement st, ResultSet rs, String table) {
            this.st = st;
            this.rs = rs;
            this.table = table;
        }

        @Override
        public boolean hasNext() {
            if (next == null && !done) {
                try {
                    if (rs.next()) {
                        next = new RowMerge.KeyedHash(rs.getString(1), rs.getString(2));
                    } else {
                        done = true;
                    }
                } catch (SQLException e) {
                    throw new StreamFailure(failure("comparing rows", table, e));
                }
            }
            return next != null;
        }

        @Override
        public RowMerge.KeyedHash next() {
            if (!hasNext()) {
                throw new NoSuchElementException();
            }
            RowMerge.KeyedHash row = next;
            next = null;
            return row;
        }

        @Override
        public void close() throws SQLException {
            st.close();
        }
    }
}
