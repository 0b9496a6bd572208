package dev.lockstep.commit;

import dev.lockstep.core.CatchUpPlan;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;

/**
 * Finds the transactions a returning node holds that the principal never held (possible only
 * after forced service: the node committed them alone before it was cut off) and reports them on
 * the principal, row images and original positions included, before the node is re-seeded. They
 * are never replayed, nor silently dropped.
 */
public final class Divergence {

    private static final int BATCH = 500;
    private static final int FETCH = 10_000;
    private static final int QUERY_SECONDS = 300;

    private Divergence() {
    }

    /**
     * The positions of the returning node's divergent journal records, in order
     * ({@link CatchUpPlan#divergent}).
     *
     * @param principal a connection to the principal
     * @param returning a connection to the returning node (now mirror)
     * @return the positions; empty when the node holds nothing the principal lacks
     * @throws SQLException when either node cannot be read
     */
    public static List<JournalReplay.Key> find(Connection principal, Connection returning) throws SQLException {
        long epoch;
        long trimmedEpoch;
        long trimmedSeq;
        try (Statement st = principal.createStatement();
             ResultSet rs = st.executeQuery("SELECT epoch, journal_trimmed_epoch, journal_trimmed_seq FROM lockstep.node_state")) {
            rs.next();
            epoch = rs.getLong(1);
            trimmedEpoch = rs.getLong(2);
            trimmedSeq = rs.getLong(3);
        }
        String older = "SELECT epoch, seq FROM lockstep.journal WHERE epoch > 0 AND epoch < ? AND (epoch, seq) >= (?, ?)"
                + " ORDER BY epoch, seq";
        return inTransaction(returning, () -> inTransaction(principal,
                () -> merge(principal, returning, older, epoch, trimmedEpoch, trimmedSeq)));
    }

    /**
     * Walks both nodes' keys in order side by side, a batch at a time, so that memory does not
     * grow with the journals: a returning node's key the principal lacks is divergent if its
     * position says so.
     */
    private static List<JournalReplay.Key> merge(Connection principal, Connection returning, String sql, long epoch,
                                                 long trimmedEpoch, long trimmedSeq) throws SQLException {
        List<JournalReplay.Key> divergent = new ArrayList<>();
        try (PreparedStatement r = cursor(returning, sql, epoch, trimmedEpoch, trimmedSeq); ResultSet held = r.executeQuery()) {
            if (!held.next()) {
                return divergent;
            }
            try (PreparedStatement p = cursor(principal, sql, epoch, trimmedEpoch, trimmedSeq); ResultSet own = p.executeQuery()) {
                JournalReplay.Key next = next(own);
                do {
                    JournalReplay.Key k = new JournalReplay.Key(held.getLong(1), held.getLong(2));
                    while (next != null && before(next, k)) {
                        next = next(own);
                    }
                    if (!k.equals(next) && CatchUpPlan.divergent(k.epoch(), k.seq(), epoch, trimmedEpoch, trimmedSeq)) {
                        divergent.add(k);
                    }
                } while (held.next());
            }
        }
        return divergent;
    }

    /**
     * Copies the returning node's records at the given positions into the principal's
     * {@code lockstep.divergence_report}; a record reported before is kept as it was.
     *
     * @param principal a connection to the principal, autocommit on
     * @param returning a connection to the returning node
     * @param node      the returning node's name
     * @param keys      positions from {@link #find}
     * @return how many records were newly reported
     * @throws SQLException when either node fails
     */
    public static int report(Connection principal, Connection returning, String node, List<JournalReplay.Key> keys)
            throws SQLException {
        int reported = 0;
        for (int start = 0; start < keys.size(); start += BATCH) {
            List<JournalRecord> records = read(returning, keys.subList(start, Math.min(keys.size(), start + BATCH)));
            try (PreparedStatement ps = principal.prepareStatement(
                    "SELECT lockstep.report_divergence(?, ?, ?, ?, ?, ?::timestamptz[], ?)")) {
                ps.setString(1, node);
                ps.setArray(2, principal.createArrayOf("bigint", records.stream().map(JournalRecord::epoch).toArray()));
                ps.setArray(3, principal.createArrayOf("bigint", records.stream().map(JournalRecord::seq).toArray()));
                ps.setArray(4, principal.createArrayOf("text", records.stream().map(JournalRecord::gid).toArray()));
                ps.setArray(5, principal.createArrayOf("text", records.stream().map(JournalRecord::origin).toArray()));
                ps.setArray(6, principal.createArrayOf("text", records.stream().map(JournalRecord::committedAt).toArray()));
                ps.setArray(7, principal.createArrayOf("text", records.stream().map(JournalRecord::changes).toArray()));
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    reported += rs.getInt(1);
                }
            }
        }
        return reported;
    }

    private static List<JournalRecord> read(Connection node, List<JournalReplay.Key> keys) throws SQLException {
        List<JournalRecord> records = new ArrayList<>();
        try (PreparedStatement ps = node.prepareStatement("SELECT j.epoch, j.seq, j.gid, j.origin, to_json(j.committed_at) #>> '{}',"
                + " j.changes::text FROM lockstep.journal j JOIN unnest(?::bigint[], ?::bigint[]) AS k(e, s)"
                + " ON j.epoch = k.e AND j.seq = k.s ORDER BY j.epoch, j.seq")) {
            ps.setArray(1, node.createArrayOf("bigint", keys.stream().map(JournalReplay.Key::epoch).toArray()));
            ps.setArray(2, node.createArrayOf("bigint", keys.stream().map(JournalReplay.Key::seq).toArray()));
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    records.add(new JournalRecord(rs.getLong(1), rs.getLong(2), rs.getString(3), rs.getString(4),
                            rs.getString(5), rs.getString(6)));
                }
            }
        }
        return records;
    }

    private static PreparedStatement cursor(Connection c, String sql, long epoch, long trimmedEpoch, long trimmedSeq)
            throws SQLException {
        PreparedStatement ps = c.prepareStatement(sql);
        ps.setFetchSize(FETCH);
        ps.setQueryTimeout(QUERY_SECONDS);
        ps.setLong(1, epoch);
        ps.setLong(2, trimmedEpoch);
        ps.setLong(3, trimmedSeq);
        return ps;
    }

    private static JournalReplay.Key next(ResultSet rs) throws SQLException {
        return rs.next() ? new JournalReplay.Key(rs.getLong(1), rs.getLong(2)) : null;
    }

    private static boolean before(JournalReplay.Key a, JournalReplay.Key b) {
        return a.epoch() < b.epoch() || (a.epoch() == b.epoch() && a.seq() < b.seq());
    }

    @FunctionalInterface
    private interface Work<T> {
        T run() throws SQLException;
    }

    /**
     * The driver fetches a batch at a time only inside a transaction: on a connection in autocommit
     * mode, one is opened for the work and ended here (it only reads).
     */
    private static <T> T inTransaction(Connection c, Work<T> work) throws SQLException {
        if (!c.getAutoCommit()) {
            return work.run();
        }
        c.setAutoCommit(false);
        try {
            return work.run();
        } finally {
            try {
                c.rollback();
            } finally {
                c.setAutoCommit(true);
            }
        }
    }
}
