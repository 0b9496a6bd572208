package dev.lockstep.commit;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Journal retention on the nodes. While the mirror is SYNCHRONIZED, the records both nodes hold
 * are deleted on both, below a position that is settled: no transaction still in flight can take
 * a place below it, so every record below it that either node will ever hold was held by both.
 * Each node remembers that position; catch-up counts a partner's record below the mirror's
 * position as held, so a trim cut short between the two nodes never replays a record twice.
 */
public final class JournalTrim {

    private static final int BATCH = 5_000;

    /**
     * The journal as the retention limit sees it.
     *
     * @param records             records held (in-doubt bars aside)
     * @param oldestAgeMillis     age of the oldest one, by the node's clock; 0 when none
     * @param currentEpochRecords records of the node's current epoch
     */
    public record Usage(long records, long oldestAgeMillis, long currentEpochRecords) {
    }

    /**
     * A point from which to tell when the principal's journal is settled up to a position: every
     * transaction that took a position up to {@code lastSeq} had a transaction id below
     * {@code nextXid} when observed.
     *
     * @param epoch   the principal's epoch
     * @param lastSeq the journal sequence's last value
     * @param nextXid the next transaction id then
     */
    public record Horizon(long epoch, long lastSeq, String nextXid) {
    }

    private JournalTrim() {
    }

    /** The node's journal use. */
    public static Usage usage(Connection node) throws SQLException {
        try (Statement st = node.createStatement();
             ResultSet rs = st.executeQuery("SELECT records, oldest_age_ms, current_epoch_records FROM lockstep.journal_usage()")) {
            rs.next();
            return new Usage(rs.getLong(1), rs.getLong(2), rs.getLong(3));
        }
    }

    /**
     * Observes the principal's journal position and transaction horizon. The position is read
     * first: a transaction that took a position up to it had its id already.
     */
    public static Horizon observe(Connection principal) throws SQLException {
        long epoch;
        long lastSeq;
        try (Statement st = principal.createStatement();
             ResultSet rs = st.executeQuery("SELECT (SELECT epoch FROM lockstep.node_state),"
                     + " (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM lockstep.journal_seq)")) {
            rs.next();
            epoch = rs.getLong(1);
            lastSeq = rs.getLong(2);
        }
        try (Statement st = principal.createStatement();
             ResultSet rs = st.executeQuery("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")) {
            rs.next();
            return new Horizon(epoch, lastSeq, rs.getString(1));
        }
    }

    /**
     * Whether every transaction of an earlier observation has ended (prepared ones included):
     * then the journal is settled up to its position.
     */
    public static boolean settled(Connection principal, Horizon h) throws SQLException {
        try (PreparedStatement ps = principal.prepareStatement("SELECT pg_snapshot_xmin(pg_current_snapshot()) >= ?::xid8"
                + " AND (SELECT epoch FROM lockstep.node_state) = ?")) {
            ps.setString(1, h.nextXid());
            ps.setLong(2, h.epoch());
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getBoolean(1);
            }
        }
    }

    /**
     * Deletes, on both nodes, the records both hold below the first one the mirror lacks, up to a
     * settled position, scanning at most {@code maxScan} of the principal's records. Principal
     * first: a trim cut short leaves records on the mirror only, which nothing replays. Nor does it
     * pass a record above the principal's trim position that only the mirror holds: a principal
     * put back to an older copy lacks it, and the mirror's record is the only one left of an
     * acknowledged commit.
     *
     * @param principal a connection to the principal, autocommit on
     * @param mirror    a connection to the mirror, autocommit on
     * @param settled   an observation {@link #settled} confirmed
     * @param maxScan   the most records one call looks at
     * @return how many records the principal deleted
     */
    public static long trimHeldByBoth(Connection principal, Connection mirror, Horizon settled, int maxScan) throws SQLException {
        JournalReplay.Key mirrorTrimmed = trimmedBelow(mirror);
        JournalReplay.Key principalTrimmed = trimmedBelow(principal);
        JournalReplay.Key from = new JournalReplay.Key(1, Long.MIN_VALUE);
        JournalReplay.Key bound = null;
        int scanned = 0;
        scan:
        while (scanned < maxScan) {
            List<JournalReplay.Key> batch = keys(principal, "SELECT epoch, seq FROM lockstep.journal WHERE (epoch, seq) >= (?, ?)"
                    + " AND (epoch, seq) <= (?, ?) AND epoch > 0 ORDER BY epoch, seq LIMIT " + Math.min(BATCH, maxScan - scanned),
                    from, new JournalReplay.Key(settled.epoch(), settled.lastSeq()));
            if (batch.isEmpty()) {
                break;
            }
            JournalReplay.Key last = batch.get(batch.size() - 1);
            JournalReplay.Key mirrorFrom = compare(from, principalTrimmed) >= 0 ? from : principalTrimmed;
            Set<JournalReplay.Key> held = new HashSet<>(keys(mirror, "SELECT epoch, seq FROM lockstep.journal"
                    + " WHERE (epoch, seq) >= (?, ?) AND (epoch, seq) <= (?, ?) AND epoch > 0", mirrorFrom, last));
            JournalReplay.Key mirrorOnly = firstMissingFrom(held, new HashSet<>(batch));
            for (JournalReplay.Key k : batch) {
                if (mirrorOnly != null && compare(k, mirrorOnly) > 0 || !held.contains(k) && compare(k, mirrorTrimmed) >= 0) {
                    bound = mirrorOnly != null && compare(k, mirrorOnly) > 0 ? mirrorOnly : k;
                    break scan;
                }
                bound = new JournalReplay.Key(k.epoch(), k.seq() + 1);
            }
            scanned += batch.size();
            from = bound;
        }
        if (bound == null) {
            return 0;
        }
        long deleted = trim(principal, bound);
        trim(mirror, bound);
        return deleted;
    }

    /** The lowest of {@code keys} that {@code of} lacks; null when it lacks none. */
    private static JournalReplay.Key firstMissingFrom(Set<JournalReplay.Key> keys, Set<JournalReplay.Key> of) {
        JournalReplay.Key first = null;
        for (JournalReplay.Key k : keys) {
            if (!of.contains(k) && (first == null || compare(k, first) < 0)) {
                first = k;
            }
        }
        return first;
    }

    /**
     * On a principal that records its mirror for seeding: deletes its records of the current
     * epoch, which nobody needs any more.
     *
     * @return how many were deleted
     * @throws SQLException 55000 when the principal does not record the mirror for seeding
     */
    public static long dropCurrentEpoch(Connection principal, long epoch) throws SQLException {
        try (PreparedStatement ps = principal.prepareStatement("SELECT lockstep.drop_current_epoch_journal(?)")) {
            ps.setLong(1, epoch);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getLong(1);
            }
        }
    }

    /** The position below which the node trimmed its journal. */
    public static JournalReplay.Key trimmedBelow(Connection node) throws SQLException {
        try (Statement st = node.createStatement();
             ResultSet rs = st.executeQuery("SELECT journal_trimmed_epoch, journal_trimmed_seq FROM lockstep.node_state")) {
            rs.next();
            return new JournalReplay.Key(rs.getLong(1), rs.getLong(2));
        }
    }

    private static long trim(Connection node, JournalReplay.Key below) throws SQLException {
        try (PreparedStatement ps = node.prepareStatement("SELECT lockstep.trim_journal(?, ?)")) {
            ps.setLong(1, below.epoch());
            ps.setLong(2, below.seq());
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getLong(1);
            }
        }
    }

    private static List<JournalReplay.Key> keys(Connection c, String sql, JournalReplay.Key from, JournalReplay.Key to)
            throws SQLException {
        List<JournalReplay.Key> keys = new ArrayList<>();
        try (PreparedStatement ps = c.prepareStatement(sql)) {
            ps.setLong(1, from.epoch());
            ps.setLong(2, from.seq());
            ps.setLong(3, to.epoch());
            ps.setLong(4, to.seq());
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    keys.add(new JournalReplay.Key(rs.getLong(1), rs.getLong(2)));
                }
            }
        }
        return keys;
    }

    private static int compare(JournalReplay.Key a, JournalReplay.Key b) {
        int byEpoch = Long.compare(a.epoch(), b.epoch());
        return byEpoch != 0 ? byEpoch : Long.compare(a.seq(), b.seq());
    }
}
