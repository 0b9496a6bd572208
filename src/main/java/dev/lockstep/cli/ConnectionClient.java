package dev.lockstep.cli;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;

/** A benchmark client that owns one connection with autocommit off and the statements it prepared on it. */
abstract class ConnectionClient implements ClientRunner.Client {

    private final Connection connection;

    /** Takes ownership of the connection; it is closed if it cannot be set up. */
    ConnectionClient(Connection connection) throws SQLException {
        this.connection = connection;
        try {
            connection.setAutoCommit(false);
        } catch (SQLException e) {
            connection.close();
            throw e;
        }
    }

    /** Prepares a statement; the connection is closed if that fails, since the client then never starts. */
    final PreparedStatement prepare(String sql) throws SQLException {
        try {
            return connection.prepareStatement(sql);
        } catch (SQLException e) {
            connection.close();
            throw e;
        }
    }

    @Override
    public final Connection connection() {
        return connection;
    }

    @Override
    public void close() throws SQLException {
        connection.close();
    }
}
