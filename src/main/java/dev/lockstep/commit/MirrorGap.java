package dev.lockstep.commit;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Duration;
import java.util.Optional;

/**
 * Whether a mirror recorded SYNCHRONIZED lacks a transaction its principal committed: a mirror
 * restored from an older backup, or put back from a snapshot, while no coordinator watched.
 *
 * <p>While the partnership is SYNCHRONIZED every commit reaches the mirror before the principal
 * (the mirror commits first), so the principal's newest journal record is on the mirror too,
 * whatever other coordinators commit meanwhile (or, once retention deleted every record, the
 * last one it deleted). A mirror without it (and not trimmed past it)
 * misses at least that transaction; committing in lockstep on top of it would leave the gap in
 * place, and a failover would serve it.
 */
public final class MirrorGap {

    private MirrorGap() {
    }

    /**
     * @param principal   a connection to the principal
     * @param mirror      a connection to the mirror
     * @param callTimeout deadline of each query
     * @return the principal's newest record the mirror lacks, as text naming its position and gid;
     *         empty when the mirror holds it or the principal has none
     * @throws SQLException when a node cannot be read
     */
    public static Optional<String> newestRecordMissingOnMirror(Connection principal, Connection mirror, Duration callTimeout)
            throws SQLException {
        Optional<Newest> newest = newestOnPrincipal(principal, callTimeout);
        if (newest.isEmpty()) {
            return Optional.empty();
        }
        long epoch = newest.get().epoch();
        long seq = newest.get().seq();
        try (PreparedStatement ps = mirror.prepareStatement("SELECT EXISTS (SELECT 1 FROM lockstep.journal WHERE epoch = ? AND seq = ?)"
                + " OR EXISTS (SELECT 1 FROM lockstep.node_state WHERE (journal_trimmed_epoch, journal_trimmed_seq) > (?, ?))")) {
            ps.setQueryTimeout(Nodes.seconds(callTimeout));
            ps.setLong(1, epoch);
            ps.setLong(2, seq);
            ps.setLong(3, epoch);
            ps.setLong(4, seq);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getBoolean(1) ? Optional.empty() : Optional.of("journal record " + epoch + "/" + seq + " (" + newest.get().what() + ")");
            }
        }
    }

    private record Newest(long epoch, long seq, String what) {
    }

    /**
     * The principal's newest record; once retention deleted them all, the last one it deleted,
     * which a healthy mirror still holds or has trimmed past (retention trims the principal first,
     * then the mirror to the same bound, and seeding copies the trim position).
     */
    private static Optional<Newest> newestOnPrincipal(Connection principal, Duration callTimeout) throws SQLException {
        try (PreparedStatement ps = principal.prepareStatement(
                "SELECT epoch, seq, gid FROM lockstep.journal WHERE epoch > 0 ORDER BY epoch DESC, seq DESC LIMIT 1")) {
            ps.setQueryTimeout(Nodes.seconds(callTimeout));
            try (ResultSet rs = ps.executeQuery()) {
                if (rs.next()) {
                    return Optional.of(new Newest(rs.getLong(1), rs.getLong(2), rs.getString(3)));
                }
            }
        }
        try (PreparedStatement ps = principal.prepareStatement("SELECT journal_trimmed_last_epoch, journal_trimmed_last_seq"
                + " FROM lockstep.node_state WHERE journal_trimmed_last_epoch > 0")) {
            ps.setQueryTimeout(Nodes.seconds(callTimeout));
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next() ? Optional.of(new Newest(rs.getLong(1), rs.getLong(2), "trimmed on the principal")) : Optional.empty();
            }
        }
    }
}
