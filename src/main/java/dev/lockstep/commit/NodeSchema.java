package dev.lockstep.commit;

import dev.lockstep.core.NodeRole;
import dev.lockstep.core.NodeView;
import dev.lockstep.jdbc.SqlStates;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.List;

/**
 * The node schema in {@code sql/node}: installs it idempotently from the classpath and reads the
 * node's view of the partnership.
 */
public final class NodeSchema {

    /** Every schema version, in order; each is applied once. */
    private static final List<String> VERSIONS = List.of("V1__node_schema.sql");

    private NodeSchema() {
    }

    /**
     * Installs any missing schema version and, on a node that has no state yet, records its role
     * at epoch 1. Runs in one transaction of its own; DDL capture is off while it runs.
     *
     * @param c           a connection (autocommit off) to the node as a role allowed to create event triggers
     * @param partnership partnership name
     * @param node        node name
     * @param initialRole the role the node takes if it has none yet
     * @throws SQLException when the installation fails; nothing is left half-installed
     */
    public static void install(Connection c, String partnership, String node, NodeRole initialRole) throws SQLException {
        boolean autoCommit = c.getAutoCommit();
        c.setAutoCommit(false);
        try (Statement st = c.createStatement()) {
            st.execute("SELECT set_config('lockstep.internal', 'on', true)");
            st.execute("SELECT pg_advisory_xact_lock(hashtextextended('lockstep.install', 0))");
            int installed = installedVersion(st);
            for (int v = installed; v < VERSIONS.size(); v++) {
                st.execute(load(VERSIONS.get(v)));
            }
            try (PreparedStatement ps = c.prepareStatement(
                    "INSERT INTO lockstep.node_state (partnership, node_name, role, epoch) VALUES (?, ?, ?, 1) ON CONFLICT DO NOTHING")) {
                ps.setString(1, partnership);
                ps.setString(2, node);
                ps.setString(3, initialRole.sqlName());
                ps.executeUpdate();
            }
            c.commit();
        } catch (SQLException e) {
            c.rollback();
            throw SqlStates.error(e.getSQLState(), "lockstep: installing the node schema on node " + node + " failed: " + e.getMessage(), e);
        } finally {
            c.setAutoCommit(autoCommit);
        }
    }

    private static int installedVersion(Statement st) throws SQLException {
        try (ResultSet rs = st.executeQuery("SELECT to_regclass('lockstep.schema_version') IS NOT NULL")) {
            rs.next();
            if (!rs.getBoolean(1)) {
                return 0;
            }
        }
        try (ResultSet rs = st.executeQuery("SELECT max(version) FROM lockstep.schema_version")) {
            rs.next();
            return rs.getInt(1);
        }
    }

    /**
     * Reads the node's view of the partnership.
     *
     * @param c    a connection to the node
     * @param node the configured node name, for the error message
     * @return the view
     * @throws SQLException 55000 when the schema or the node state is missing
     */
    public static NodeView readView(Connection c, String node) throws SQLException {
        try (Statement st = c.createStatement();
             ResultSet rs = st.executeQuery("SELECT to_regclass('lockstep.node_state') IS NOT NULL")) {
            rs.next();
            if (!rs.getBoolean(1)) {
                throw SqlStates.error(SqlStates.NOT_READY, "lockstep: node " + node
                        + " has no Lockstep schema; install it (installSchema=true, or the install command)", null);
            }
        }
        try (Statement st = c.createStatement();
             ResultSet rs = st.executeQuery("SELECT node_name, partnership, role, epoch FROM lockstep.node_state")) {
            if (!rs.next()) {
                throw SqlStates.error(SqlStates.NOT_READY, "lockstep: node " + node + " has the schema but no node state", null);
            }
            return new NodeView(rs.getString(1), rs.getString(2), NodeRole.fromSql(rs.getString(3)), rs.getLong(4));
        } finally {
            if (!c.getAutoCommit()) {
                c.rollback();
            }
        }
    }

    private static String load(String file) throws SQLException {
        String path = "/dev/lockstep/sql/node/" + file;
        try (InputStream in = NodeSchema.class.getResourceAsStream(path)) {
            if (in == null) {
                throw SqlStates.error(SqlStates.NOT_READY, "lockstep: " + path + " is missing from the classpath", null);
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw SqlStates.error(SqlStates.NOT_READY, "lockstep: cannot read " + path, e);
        }
    }
}
