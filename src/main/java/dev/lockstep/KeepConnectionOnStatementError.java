package dev.lockstep;

import com.zaxxer.hikari.SQLExceptionOverride;

import java.sql.SQLException;

/**
 * HikariCP evicts a connection on SQLSTATE 0A000, but PostgreSQL raises it for statements it
 * refuses (PREPARE TRANSACTION after touching a temporary table, say) on a perfectly healthy
 * connection. The application keeps its connection, as with plain JDBC.
 */
public final class KeepConnectionOnStatementError implements SQLExceptionOverride {

    @java.lang.Override
    public Override adjudicate(SQLException e) {
        return "0A000".equals(e.getSQLState()) ? Override.DO_NOT_EVICT : Override.CONTINUE_EVICT;
    }
}
