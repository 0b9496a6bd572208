package dev.lockstep.jdbc;

import java.sql.Connection;
import java.sql.SQLException;

/** Ends a transaction that was run on the principal by the mirrored commit protocol. */
public interface TransactionCommitter {

    /**
     * Commits the transaction open on {@code principal} on both nodes, or on the principal alone
     * when it changed nothing mirrored. Returns only once the outcome is durable.
     *
     * @param principal    the physical connection to the principal, in a transaction
     * @param likelyWrites whether the statements run suggest that the transaction wrote
     * @throws SQLException when the transaction did not commit (it is then rolled back on both
     *                      nodes), or with SQLSTATE 40003 when its outcome is not yet known
     */
    void commit(Connection principal, boolean likelyWrites) throws SQLException;
}
