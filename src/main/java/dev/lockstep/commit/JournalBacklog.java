package dev.lockstep.commit;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Duration;

/**
 * The send queue: journal records the principal holds beyond a position the mirror is known to
 * hold, with their size and the age of the oldest. Read each heartbeat while the mirror is behind.
 */
public final class JournalBacklog {

    /**
     * A position in the journal: the principal's order (epoch, seq).
     *
     * @param epoch epoch of the record
     * @param seq   its sequence number
     */
    public record Position(long epoch, long seq) {
        /** Before every record. */
        public static final Position START = new Position(0, 0);
    }

    /**
     * The records beyond a position.
     *
     * @param records how many
     * @param bytes   their stored size
     * @param oldest  age of the oldest (zero when none)
     */
    public record Backlog(long records, long bytes, Duration oldest) {
        /** Nothing waiting. */
        public static final Backlog NONE = new Backlog(0, 0, Duration.ZERO);
    }

    /** The most records a reading counts: beyond it the figure says "at least". */
    public static final int CAP = 1_000_000;

    private JournalBacklog() {
    }

    /**
     * The last record a node's journal holds, in the principal's order.
     *
     * @param c       a connection to the node
     * @param timeout deadline of the read
     * @return the position, or {@link Position#START} for an empty journal
     */
    public static Position last(Connection c, Duration timeout) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT epoch, seq FROM lockstep.journal ORDER BY epoch DESC, seq DESC LIMIT 1")) {
            ps.setQueryTimeout(seconds(timeout));
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next() ? new Position(rs.getLong(1), rs.getLong(2)) : Position.START;
            }
        } finally {
            endRead(c);
        }
    }

    /**
     * The principal's records beyond {@code after}.
     *
     * @param principal a connection to the principal
     * @param after     a position the mirror holds
     * @param timeout   deadline of the read
     * @return the backlog
     */
    public static Backlog beyond(Connection principal, Position after, Duration timeout) throws SQLException {
        // Capped, so that a huge queue is still measured within a heartbeat; epoch 0 holds local markers.
        String sql = "SELECT count(*), coalesce(sum(size), 0),"
                + " coalesce(extract(epoch FROM clock_timestamp() - min(committed_at)) * 1000, 0)::bigint"
                + " FROM (SELECT pg_column_size(changes) AS size, committed_at FROM lockstep.journal"
                + " WHERE (epoch, seq) > (?, ?) AND epoch > 0 ORDER BY epoch, seq LIMIT " + CAP + ") q";
        try (PreparedStatement ps = principal.prepareStatement(sql)) {
            ps.setQueryTimeout(seconds(timeout));
            ps.setLong(1, after.epoch());
            ps.setLong(2, after.seq());
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return new Backlog(rs.getLong(1), rs.getLong(2), Duration.ofMillis(Math.max(0, rs.getLong(3))));
            }
        } finally {
            endRead(principal);
        }
    }

    private static void endRead(Connection c) throws SQLException {
        if (!c.getAutoCommit()) {
            c.rollback();
        }
    }

    private static int seconds(Duration timeout) {
        return (int) Math.max(1, (timeout.toMillis() + 999) / 1000);
    }
}
