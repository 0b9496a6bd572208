package dev.lockstep.cli;

import java.sql.Connection;
import java.sql.SQLException;

/**
 * Runs one unit of work as a transaction (autocommit off) and commits it, starting over when
 * PostgreSQL asks for a retry: serialization failure (40001) or deadlock (40P01). Nothing else is
 * retried; in particular not 40003 (outcome unknown), which a blind retry could apply twice.
 */
public final class Transactions {

    /** SQLSTATE serialization_failure. */
    public static final String SERIALIZATION_FAILURE = "40001";
    /** SQLSTATE deadlock_detected. */
    public static final String DEADLOCK_DETECTED = "40P01";

    private Transactions() {
    }

    /** The statements of one transaction, without the commit. */
    @FunctionalInterface
    public interface Work {
        /** Runs the statements on the connection the transaction is open on. */
        void run() throws SQLException;
    }

    /**
     * Runs {@code work} and commits, at most {@code maxAttempts} times.
     *
     * @param c           a connection with autocommit off
     * @param maxAttempts attempts in all (at least 1)
     * @param work        the statements
     * @return how many retries it took (0 when the first attempt committed)
     * @throws SQLException the last failure when it is not retryable or the attempts are used up;
     *                      the transaction is rolled back then
     */
    public static int commitWithRetry(Connection c, int maxAttempts, Work work) throws SQLException {
        for (int attempt = 1; ; attempt++) {
            try {
                work.run();
                c.commit();
                return attempt - 1;
            } catch (SQLException e) {
                rollbackQuietly(c, e);
                if (!isRetryable(e) || attempt >= maxAttempts) {
                    throw e;
                }
            }
        }
    }

    /** Whether the failure, or any failure it wraps, is a serialization failure or a deadlock. */
    public static boolean isRetryable(SQLException e) {
        Throwable t = e;
        for (int depth = 0; t != null && depth < 10; depth++, t = t.getCause()) {
            if (t instanceof SQLException s) {
                String state = s.getSQLState();
                if (SERIALIZATION_FAILURE.equals(state) || DEADLOCK_DETECTED.equals(state)) {
                    return true;
                }
            }
        }
        return false;
    }

    private static void rollbackQuietly(Connection c, SQLException cause) {
        try {
            c.rollback();
        } catch (SQLException e) {
            cause.addSuppressed(e);
        }
    }
}
