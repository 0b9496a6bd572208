package dev.lockstep.commit;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Duration;
import java.util.Optional;

/**
 * Whether a mirror recorded SYNCHRONIZED lacks a transaction its principal committed: a mirror
 * restored from an older backup, or put back from a snapshot, while no coordinator watched; and
 * the reverse, a principal put back so that it lacks what its mirror committed.
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
        return holdsOrTrimmedPast(mirror, epoch, seq, callTimeout) ? Optional.empty()
                : Optional.of("journal record " + epoch + "/" + seq + " (" + newest.get().what() + ")");
    }

    private record Newest(long epoch, long seq, String what) {
    }

    /**
     * Whether the mirror lacks the last record the principal trimmed while holding newer ones:
     * put back to a copy older than that record, then given newer commits. A healthy mirror
     * holds it or has trimmed past it (retention trims the principal first, then the mirror to
     * the same bound, and seeding copies the trim position).
     *
     * @param principal   a connection to the principal
     * @param mirror      a connection to the mirror
     * @param callTimeout deadline of each query
     * @return that record, as text naming its position; empty when the mirror holds it or the
     *         principal never trimmed
     * @throws SQLException when a node cannot be read
     */
    public static Optional<String> lastTrimmedMissingOnMirror(Connection principal, Connection mirror, Duration callTimeout)
            throws SQLException {
        try (PreparedStatement ps = principal.prepareStatement("SELECT journal_trimmed_last_epoch, journal_trimmed_last_seq"
                + " FROM lockstep.node_state WHERE journal_trimmed_last_epoch > 0")) {
            ps.setQueryTimeout(Nodes.seconds(callTimeout));
            try (ResultSet rs = ps.executeQuery()) {
                if (!rs.next()) {
                    return Optional.empty();
                }
                long epoch = rs.getLong(1);
                long seq = rs.getLong(2);
                return holdsOrTrimmedPast(mirror, epoch, seq, callTimeout) ? Optional.empty()
                        : Optional.of("journal record " + epoch + "/" + seq + " (the last the principal trimmed)");
            }
        }
    }

    /**
     * Whether the mirror lacks any of the principal's records of the epoch, not only the newest: a
     * mirror put back while coordinators run holds the commits that followed its restart, so its
     * gap lies below the principal's newest record. Reads the positions of the principal's records
     * above both nodes' trim positions, in batches, and counts how many of each batch the mirror
     * holds; every record the principal committed before it was read is on the mirror too (the
     * mirror commits first).
     *
     * @param principal   a connection to the principal, autocommit on (no lock held between queries)
     * @param mirror      a connection to the mirror
     * @param epoch       the partnership's epoch
     * @param callTimeout deadline of each query
     * @return how many records the mirror lacks, as text naming the range; empty when it lacks none
     * @throws SQLException when a node cannot be read; 40001 when retention trimmed either node
     *                      during the count, so that nothing can be concluded (ask again)
     */
    public static Optional<String> recordsMissingOnMirror(Connection principal, Connection mirror, long epoch,
                                                          Duration callTimeout) throws SQLException {
        return missing(principal, mirror, epoch, callTimeout, "principal", (seqs, gids) -> {
            try (PreparedStatement ps = mirror.prepareStatement("SELECT count(*) FROM lockstep.journal WHERE epoch = ? AND seq = ANY (?)")) {
                ps.setQueryTimeout(Nodes.seconds(callTimeout));
                ps.setLong(1, epoch);
                ps.setArray(2, mirror.createArrayOf("int8", seqs));
                return count(ps);
            }
        });
    }

    /**
     * The reverse, for a principal put back while coordinators run: whether it lacks any of its
     * SYNCHRONIZED mirror's records of the epoch. A record the mirror committed may still be
     * prepared on the principal (the mirror commits first): that counts as held. The principal's
     * prepared transactions are listed before its journal is read, so that a commit finishing in
     * between is seen by the second read.
     *
     * @param principal   a connection to the principal, autocommit on
     * @param mirror      a connection to the mirror
     * @param epoch       the partnership's epoch
     * @param callTimeout deadline of each query
     * @return how many records the principal lacks, as text naming the range; empty when none
     * @throws SQLException when a node cannot be read; 40001 when retention trimmed either node
     *                      during the count
     */
    public static Optional<String> recordsMissingOnPrincipal(Connection principal, Connection mirror, long epoch,
                                                             Duration callTimeout) throws SQLException {
        return missing(mirror, principal, epoch, callTimeout, "mirror", (seqs, gids) -> {
            Object prepared;
            try (PreparedStatement ps = principal.prepareStatement("SELECT coalesce(array_agg(gid), '{}') FROM pg_prepared_xacts"
                    + " WHERE database = current_database()")) {
                ps.setQueryTimeout(Nodes.seconds(callTimeout));
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    prepared = rs.getArray(1).getArray();
                }
            }
            try (PreparedStatement ps = principal.prepareStatement("SELECT count(*) FROM unnest(?::int8[], ?::text[]) AS r(seq, gid)"
                    + " WHERE EXISTS (SELECT 1 FROM lockstep.journal j WHERE j.epoch = ? AND j.seq = r.seq) OR r.gid = ANY (?::text[])")) {
                ps.setQueryTimeout(Nodes.seconds(callTimeout));
                ps.setArray(1, principal.createArrayOf("int8", seqs));
                ps.setArray(2, principal.createArrayOf("text", gids));
                ps.setLong(3, epoch);
                ps.setArray(4, principal.createArrayOf("text", (Object[]) prepared));
                return count(ps);
            }
        });
    }

    /** How many of a batch of one node's records, given by position and gid, the other node holds. */
    @FunctionalInterface
    private interface HeldCount {
        long of(Long[] seqs, String[] gids) throws SQLException;
    }

    private static final int BATCH = 10_000;

    /**
     * Reads {@code source}'s records of the epoch above both trim positions in batches, and counts
     * how many of each the other node holds.
     */
    private static Optional<String> missing(Connection source, Connection other, long epoch, Duration callTimeout, String sourceRole,
                                            HeldCount held) throws SQLException {
        long from = trimmedSeq(source, other, epoch, callTimeout);
        long read = 0;
        long holds = 0;
        long after = from - 1;
        while (true) {
            Long[] seqs;
            String[] gids;
            try (PreparedStatement ps = source.prepareStatement("SELECT coalesce(array_agg(seq ORDER BY seq), '{}'),"
                    + " coalesce(array_agg(gid ORDER BY seq), '{}') FROM"
                    + " (SELECT seq, gid FROM lockstep.journal WHERE epoch = ? AND seq > ? ORDER BY seq LIMIT " + BATCH + ") b")) {
                ps.setQueryTimeout(Nodes.seconds(callTimeout));
                ps.setLong(1, epoch);
                ps.setLong(2, after);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    seqs = (Long[]) rs.getArray(1).getArray();
                    gids = (String[]) rs.getArray(2).getArray();
                }
            }
            if (seqs.length == 0) {
                break;
            }
            read += seqs.length;
            holds += held.of(seqs, gids);
            after = seqs[seqs.length - 1];
        }
        if (from != trimmedSeq(source, other, epoch, callTimeout)) {
            throw new SQLException("lockstep: journal retention trimmed a node while its journal was compared with the other's;"
                    + " nothing concluded", "40001");
        }
        return holds == read ? Optional.empty() : Optional.of((read - holds) + " of the " + sourceRole + "'s " + read
                + " journal records of epoch " + epoch + " from seq " + from);
    }

    private static long count(PreparedStatement ps) throws SQLException {
        try (ResultSet rs = ps.executeQuery()) {
            rs.next();
            return rs.getLong(1);
        }
    }

    /** The seq below which either node deleted its records of the epoch; 0 when both kept them all. */
    private static long trimmedSeq(Connection principal, Connection mirror, long epoch, Duration callTimeout) throws SQLException {
        return Math.max(trimmedSeq(principal, epoch, callTimeout), trimmedSeq(mirror, epoch, callTimeout));
    }

    /** The seq below which the node deleted its records of the epoch; 0 when it kept them all. */
    private static long trimmedSeq(Connection node, long epoch, Duration callTimeout) throws SQLException {
        try (PreparedStatement ps = node.prepareStatement("SELECT CASE WHEN journal_trimmed_epoch = ? THEN journal_trimmed_seq"
                + " WHEN journal_trimmed_epoch > ? THEN 9223372036854775807 ELSE 0 END FROM lockstep.node_state")) {
            ps.setQueryTimeout(Nodes.seconds(callTimeout));
            ps.setLong(1, epoch);
            ps.setLong(2, epoch);
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next() ? rs.getLong(1) : 0;
            }
        }
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

    /**
     * The reverse: whether the principal lacks a transaction its SYNCHRONIZED mirror committed
     * (the principal restored from an older backup), so that acknowledged commits are missing
     * from it. The mirror commits before the principal, so a record the mirror holds may still be
     * prepared on the principal (another coordinator's commit in flight, or in doubt): that counts
     * as held. Only records of the given epoch are compared.
     *
     * @param principal   a connection to the principal (read committed: each query sees what committed before it)
     * @param mirror      a connection to the mirror
     * @param epoch       the partnership's epoch
     * @param callTimeout deadline of each query
     * @return the mirror's newest record of the epoch that the principal neither holds, nor has
     *         prepared, nor trimmed past; empty otherwise
     * @throws SQLException when a node cannot be read
     */
    public static Optional<String> newestMirrorRecordMissingOnPrincipal(Connection principal, Connection mirror, long epoch,
                                                                        Duration callTimeout) throws SQLException {
        long seq;
        String gid;
        try (PreparedStatement ps = mirror.prepareStatement(
                "SELECT seq, gid FROM lockstep.journal WHERE epoch = ? ORDER BY seq DESC LIMIT 1")) {
            ps.setQueryTimeout(Nodes.seconds(callTimeout));
            ps.setLong(1, epoch);
            try (ResultSet rs = ps.executeQuery()) {
                if (!rs.next()) {
                    return Optional.empty();
                }
                seq = rs.getLong(1);
                gid = rs.getString(2);
            }
        }
        // Prepared first, then the journal in a later snapshot: a commit that finishes in between
        // is seen by the second query.
        if (exists(principal, "SELECT EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE gid = ? AND database = current_database())",
                gid, callTimeout)) {
            return Optional.empty();
        }
        return holdsOrTrimmedPast(principal, epoch, seq, callTimeout) ? Optional.empty()
                : Optional.of("journal record " + epoch + "/" + seq + " (" + gid + ")");
    }

    /** Whether the node holds the record, or has trimmed past it (retention deleted it there). */
    private static boolean holdsOrTrimmedPast(Connection node, long epoch, long seq, Duration callTimeout) throws SQLException {
        try (PreparedStatement ps = node.prepareStatement("SELECT EXISTS (SELECT 1 FROM lockstep.journal WHERE epoch = ? AND seq = ?)"
                + " OR EXISTS (SELECT 1 FROM lockstep.node_state WHERE (journal_trimmed_epoch, journal_trimmed_seq) > (?, ?))")) {
            ps.setQueryTimeout(Nodes.seconds(callTimeout));
            ps.setLong(1, epoch);
            ps.setLong(2, seq);
            ps.setLong(3, epoch);
            ps.setLong(4, seq);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getBoolean(1);
            }
        }
    }

    private static boolean exists(Connection node, String sql, String parameter, Duration callTimeout) throws SQLException {
        try (PreparedStatement ps = node.prepareStatement(sql)) {
            ps.setQueryTimeout(Nodes.seconds(callTimeout));
            ps.setString(1, parameter);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getBoolean(1);
            }
        }
    }
}
