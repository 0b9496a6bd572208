package dev.lockstep;

import io.github.resilience4j.core.IntervalFunction;
import io.github.resilience4j.retry.Retry;
import io.github.resilience4j.retry.RetryConfig;

import javax.sql.DataSource;
import java.sql.Connection;
import java.sql.SQLException;
import java.time.Duration;
import java.util.Set;

/**
 * A unit of work that survives a failover or a retryable conflict: it runs in one transaction and
 * is run again, after a growing pause, when it fails with a serialization failure (40001), a
 * deadlock (40P01), a lost or refused connection (08xxx, as during a failover), a fenced stale
 * epoch (25006) or an unknown commit outcome (40003). The work must therefore be idempotent:
 * after 40003 it may have committed already. Plain connections keep plain JDBC semantics.
 */
public final class Lockstep {

    private static final Set<String> RETRYABLE = Set.of("40001", "40P01", "40003", "25006", "57P01");

    private Lockstep() {
    }

    /** Work done on a connection in one transaction. */
    @FunctionalInterface
    public interface Work<T> {
        /**
         * @param connection a connection with autocommit off; commit and rollback are done for you
         * @return the work's result
         * @throws SQLException to fail the attempt
         */
        T run(Connection connection) throws SQLException;
    }

    /**
     * How often and how patiently to retry.
     *
     * @param maxAttempts    attempts in all, at least 1
     * @param initialBackoff pause before the second attempt; doubled each time
     * @param maxBackoff     the longest pause
     */
    public record RetryPolicy(int maxAttempts, Duration initialBackoff, Duration maxBackoff) {

        /** 10 attempts, pauses from 100 ms doubling up to 2 s: about 12 s in all, past a 10 s partner timeout. */
        public static final RetryPolicy DEFAULT = new RetryPolicy(10, Duration.ofMillis(100), Duration.ofSeconds(2));

        /** Validates the policy. */
        public RetryPolicy {
            if (maxAttempts < 1 || maxAttempts > 1000) {
                throw new IllegalArgumentException("invalid setting 'maxAttempts': must be between 1 and 1000; got " + maxAttempts);
            }
            if (initialBackoff == null || initialBackoff.isNegative() || initialBackoff.isZero()) {
                throw new IllegalArgumentException("invalid setting 'initialBackoff': must be positive; got " + initialBackoff);
            }
            if (maxBackoff == null || maxBackoff.compareTo(initialBackoff) < 0) {
                throw new IllegalArgumentException("invalid setting 'maxBackoff': must be at least initialBackoff ("
                        + initialBackoff + "); got " + maxBackoff);
            }
        }
    }

    /**
     * Runs the work in a transaction with {@link RetryPolicy#DEFAULT}.
     *
     * @param dataSource where to get connections (a {@link LockstepDataSource}, typically)
     * @param work       the idempotent work
     * @return the work's result
     * @throws SQLException the last failure once the attempts are used up, or the first one that is not retryable
     */
    public static <T> T inTransaction(DataSource dataSource, Work<T> work) throws SQLException {
        return inTransaction(dataSource, RetryPolicy.DEFAULT, work);
    }

    /**
     * Runs the work in a transaction, retrying as the policy says.
     *
     * @param dataSource where to get connections
     * @param policy     how often and how patiently to retry
     * @param work       the idempotent work
     * @return the work's result
     * @throws SQLException the last failure once the attempts are used up, or the first one that is not retryable
     */
    public static <T> T inTransaction(DataSource dataSource, RetryPolicy policy, Work<T> work) throws SQLException {
        Retry retry = Retry.of("lockstep-unit-of-work", RetryConfig.custom()
                .maxAttempts(policy.maxAttempts())
                .intervalFunction(IntervalFunction.ofExponentialBackoff(policy.initialBackoff(), 2.0, policy.maxBackoff()))
                .retryOnException(Lockstep::retryable)
                .build());
        try {
            return retry.executeCallable(() -> once(dataSource, work));
        } catch (SQLException | RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new SQLException("lockstep: unit of work failed: " + e.getMessage(), "58000", e);
        }
    }

    /** Whether a failure is worth another attempt of idempotent work. */
    static boolean retryable(Throwable t) {
        if (t instanceof java.sql.SQLTransientConnectionException) {
            return true;
        }
        if (!(t instanceof SQLException e) || e.getSQLState() == null) {
            return false;
        }
        return RETRYABLE.contains(e.getSQLState()) || e.getSQLState().startsWith("08");
    }

    private static <T> T once(DataSource dataSource, Work<T> work) throws SQLException {
        try (Connection c = dataSource.getConnection()) {
            c.setAutoCommit(false);
            try {
                T result = work.run(c);
                c.commit();
                return result;
            } catch (SQLException | RuntimeException e) {
                try {
                    if (!c.isClosed()) {
                        c.rollback();
                    }
                } catch (SQLException rollbackFailure) {
                    e.addSuppressed(rollbackFailure);
                }
                throw e;
            }
        }
    }
}
