package dev.lockstep.commit;

import dev.lockstep.core.CatchUpPlan;

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
 * Finds the transactions a returning node holds that the principal never held (possible only
 * after forced service: the node committed them alone before it was cut off) and reports them on
 * the principal, row images and original positions included, before the node is re-seeded. They
 * are never replayed, nor silently dropped.
 */
public final class Divergence {

    private static final int BATCH = 500;

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
        List<JournalReplay.Key> held = keys(returning, older, epoch, trimmedEpoch, trimmedSeq);
        if (held.isEmpty()) {
            return held;
        }
        Set<JournalReplay.Key> onPrincipal = new HashSet<>(keys(principal, older, epoch, trimmedEpoch, trimmedSeq));
        List<JournalReplay.Key> divergent = new ArrayList<>();
        for (JournalReplay.Key k : held) {
            if (!onPrincipal.contains(k) && CatchUpPlan.divergent(k.epoch(), k.seq(), epoch, trimmedEpoch, trimmedSeq)) {
                divergent.add(k);
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

    private static List<JournalReplay.Key> keys(Connection c, String sql, long epoch, long trimmedEpoch, long trimmedSeq)
            throws SQLException {
        List<JournalReplay.Key> keys = new ArrayList<>();
        try (PreparedStatement ps = c.prepareStatement(sql)) {
            ps.setFetchSize(10_000);
            ps.setLong(1, epoch);
            ps.setLong(2, trimmedEpoch);
            ps.setLong(3, trimmedSeq);
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    keys.add(new JournalReplay.Key(rs.getLong(1), rs.getLong(2)));
                }
            }
        }
        return keys;
    }
}
