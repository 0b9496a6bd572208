package dev.lockstep.commit;

import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;

/** Small JDBC helpers shared by the commit protocol and in-doubt resolution. */
final class Nodes {

    private Nodes() {
    }

    static int seconds(Duration timeout) {
        return (int) Math.max(1, (timeout.toMillis() + 999) / 1000);
    }

    /**
     * Runs a statement that may not run inside a transaction block (COMMIT PREPARED, ROLLBACK
     * PREPARED) on a connection that is kept with autocommit off.
     */
    static void runOutsideTransaction(Connection c, String sql, Duration timeout) throws SQLException {
        c.setAutoCommit(true);
        try (Statement st = c.createStatement()) {
            st.setQueryTimeout(seconds(timeout));
            st.execute(sql);
        } finally {
            c.setAutoCommit(false);
        }
    }

    static String quoted(String gid) {
        return "'" + gid.replace("'", "''") + "'";
    }
}
