package dev.lockstep.jdbc;

import java.sql.SQLException;

/** The SQLSTATEs Lockstep raises, and how it classifies the ones it receives. */
public final class SqlStates {

    /** A node could not be reached (connection_exception: unable to establish). */
    public static final String CONNECTION_FAILED = "08001";
    /** An established link to a node broke. */
    public static final String CONNECTION_FAILURE = "08006";
    /** The outcome of the transaction is unknown to the client (transaction_resolution_unknown). */
    public static final String OUTCOME_UNKNOWN = "40003";
    /** Serialization failure: retry the transaction. */
    public static final String SERIALIZATION_FAILURE = "40001";
    /** The node may not accept this write: it is a mirror or its epoch moved (read_only_sql_transaction). */
    public static final String FENCED = "25006";
    /** A node is not in the state Lockstep needs (object_not_in_prerequisite_state). */
    public static final String NOT_READY = "55000";
    /** Insufficient privilege. */
    public static final String PRIVILEGE = "42501";
    /** A feature Lockstep cannot mirror was used. */
    public static final String NOT_SUPPORTED = "0A000";
    /** No transaction is active (commit or rollback in autocommit mode). */
    public static final String NO_TRANSACTION = "25P01";
    /** A statement was cancelled: here, by a deadline of Lockstep's own. */
    public static final String QUERY_CANCELED = "57014";
    /** A lock was not granted in time (lock_not_available): the node was busy, nothing changed. */
    public static final String LOCK_NOT_AVAILABLE = "55P03";

    /** A deadlock was detected and this transaction was chosen to end it (deadlock_detected). */
    public static final String DEADLOCK = "40P01";

    /** An object named does not exist (undefined_object), such as a prepared transaction already settled. */
    public static final String UNDEFINED_OBJECT = "42704";

    private SqlStates() {
    }

    /** A new exception with a state and a message; the cause is kept. */
    public static SQLException error(String sqlState, String message, Throwable cause) {
        return new SQLException(message, sqlState, cause);
    }

    /**
     * A new exception for a state expected to clear by itself, such as transactions in doubt that
     * resolution is about to settle: a {@link java.sql.SQLTransientException}, so that callers can
     * tell it from one that needs an operator.
     */
    public static SQLException transientError(String sqlState, String message, Throwable cause) {
        return new java.sql.SQLTransientException(message, sqlState, cause);
    }

    /**
     * Whether the failure says the link to the node is gone: a connection exception (class 08),
     * or the server shutting down or crashing under the session (57P01-57P03).
     */
    public static boolean isConnectionLoss(SQLException e) {
        String state = e.getSQLState();
        return state != null && (state.startsWith("08") || state.matches("57P0[123]"));
    }
}
