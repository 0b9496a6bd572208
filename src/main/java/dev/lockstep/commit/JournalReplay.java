package dev.lockstep.commit;

import dev.lockstep.jdbc.SqlStates;

import java.sql.Array;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Replays onto a mirror the principal's journal records it lacks, in the principal's order
 * (epoch, seq): conflicting transactions took their sequence numbers in the order they
 * committed, since each held its row locks until then. A record still in flight when a pass reads
 * the journal is not skipped: every pass compares the journal from the first gap on with what the
 * mirror holds, so a late commit with a lower sequence number is found by the next pass; rolled
 * back transactions leave gaps that no pass ever finds. Epoch 0 holds in-doubt resolution's bars,
 * local to each node, and is never replayed.
 */
public final class JournalReplay {

    /** A journal record's position. */
    public record Key(long epoch, long seq) {
    }

    private static final int BATCH = 500;

    private final Connection principal;
    private final Connection mirror;
    private final Duration callTimeout;
    private static final Key START = new Key(Long.MIN_VALUE, Long.MIN_VALUE);

    private final Set<Key> onMirror = new HashSet<>();
    /** The first gap the first pass found: the cut-over's final pass scans from here. */
    private Key origin = START;
    /** Where the next pass scans from: see {@link #missing()}. */
    private Key from = START;
    private Key highestSeenBefore = START;
    /** Above the last record that was settled when catch-up began; see {@link #settleStart}. */
    private Key floor = START;
    /** The mirror held every record below this position when it trimmed them: none is missing. */
    private Key mirrorTrimmedBelow = START;

    /**
     * @param principal   a connection to the principal, autocommit on, whose sessions have a
     *                    {@code statement_timeout} (a server-side deadline on every statement)
     * @param mirror      a connection to the mirror with {@code session_replication_role = replica},
     *                    the session settings of the commit protocol's mirror pool and a {@code statement_timeout}
     * @param callTimeout how long the cut-over waits for writers under way
     * @throws SQLException when the mirror's journal cannot be read
     */
    public JournalReplay(Connection principal, Connection mirror, Duration callTimeout) throws SQLException {
        this.principal = principal;
        this.mirror = mirror;
        this.callTimeout = callTimeout;
        mirror.setAutoCommit(false);
        try (Statement st = mirror.createStatement()) {
            st.setFetchSize(10_000);
            try (ResultSet rs = st.executeQuery("SELECT epoch, seq FROM lockstep.journal WHERE epoch > 0")) {
                while (rs.next()) {
                    onMirror.add(new Key(rs.getLong(1), rs.getLong(2)));
                }
            }
        }
        mirror.commit();
        mirrorTrimmedBelow = JournalTrim.trimmedBelow(mirror);
        mirror.commit();
    }

    /**
     * Takes the partnership's catch-up claim on the principal for the life of the connection, so
     * that one coordinator at a time catches the mirror up; another takes over if it dies.
     *
     * @return false when another session holds it
     */
    public static boolean claim(Connection principal, String partnership) throws SQLException {
        try (PreparedStatement ps = principal.prepareStatement("SELECT pg_try_advisory_lock(hashtextextended(?, 0))")) {
            ps.setString(1, claimName(partnership));
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getBoolean(1);
            }
        }
    }

    /**
     * As {@link #claim}, waiting up to {@code wait} for another session to release it.
     *
     * @param principal a connection to the principal, autocommit on
     * @return false when another session still held it after {@code wait}
     */
    public static boolean claimWithin(Connection principal, String partnership, Duration wait) throws SQLException {
        try (Statement st = principal.createStatement()) {
            st.execute("SET lock_timeout = '" + Math.max(1, wait.toMillis()) + "ms'");
        }
        try (PreparedStatement ps = principal.prepareStatement("SELECT pg_advisory_lock(hashtextextended(?, 0))")) {
            ps.setString(1, claimName(partnership));
            ps.executeQuery().close();
            return true;
        } catch (SQLException e) {
            if (!SqlStates.LOCK_NOT_AVAILABLE.equals(e.getSQLState())) {
                throw e;
            }
            return false;
        } finally {
            try (Statement st = principal.createStatement()) {
                st.execute("RESET lock_timeout");
            }
        }
    }

    private static String claimName(String partnership) {
        return "lockstep.catch-up:" + partnership;
    }

    /** How many of the partnership's transactions the node holds prepared (in doubt). */
    public static int preparedOn(Connection node, String partnership) throws SQLException {
        try (PreparedStatement ps = node.prepareStatement("SELECT count(*) FROM pg_prepared_xacts"
                + " WHERE database = current_database() AND starts_with(gid, ?)")) {
            ps.setString(1, dev.lockstep.core.Gid.prefixOf(partnership));
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getInt(1);
            }
        } finally {
            if (!node.getAutoCommit()) {
                node.rollback();
            }
        }
    }

    /**
     * Marks where records may still be in flight: takes the principal's role lock for a moment
     * (which waits for every writer under way) and reads the journal's last sequence number.
     * Every record up to it is then committed or rolled back for good, so the first gap a later
     * pass finds at or below it, or the next number, is where nothing can be missed from.
     *
     * @param epoch    the principal's epoch
     * @param lockWait how long to wait for writers under way
     * @throws SQLException 55P03 when they did not finish in time
     */
    public void settleStart(long epoch, Duration lockWait) throws SQLException {
        beginCutOver(lockWait);
        try (Statement st = principal.createStatement();
             ResultSet rs = st.executeQuery("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM lockstep.journal_seq")) {
            rs.next();
            floor = new Key(epoch, rs.getLong(1) + 1);
        } finally {
            abandonCutOver();
        }
    }

    /**
     * The positions of the principal's records the mirror lacks, in order, for a pass while the
     * principal keeps committing. To stay cheap, a pass scans from the lower of the previous
     * pass's first gap and the highest position the pass before that saw: a transaction in flight
     * then has had two passes to commit. One still in flight longer is found by
     * {@link #missingSinceStart()}, which the cut-over runs while no transaction is in flight.
     */
    public List<Key> missing() throws SQLException {
        List<Key> missing = new ArrayList<>();
        Key highest = scan(from, missing);
        if (origin == START) {
            origin = missing.isEmpty() ? floor : min(missing.get(0), floor);
        }
        Key next = missing.isEmpty() ? highestSeenBefore : min(missing.get(0), highestSeenBefore);
        highestSeenBefore = highest;
        from = origin == START ? START : max(next, origin);
        return missing;
    }

    /** Every position the mirror lacks from the first gap on: complete once no transaction is in flight. */
    public List<Key> missingSinceStart() throws SQLException {
        List<Key> missing = new ArrayList<>();
        scan(origin, missing);
        return missing;
    }

    private Key scan(Key from, List<Key> missing) throws SQLException {
        Key start = max(from, mirrorTrimmedBelow);
        Key highest = from;
        try (PreparedStatement ps = principal.prepareStatement(
                "SELECT epoch, seq FROM lockstep.journal WHERE (epoch, seq) >= (?, ?) AND epoch > 0 ORDER BY epoch, seq")) {
            ps.setFetchSize(10_000);
            ps.setLong(1, start.epoch());
            ps.setLong(2, start.seq());
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    Key k = new Key(rs.getLong(1), rs.getLong(2));
                    highest = k;
                    if (!onMirror.contains(k)) {
                        missing.add(k);
                    }
                }
            }
        }
        return highest;
    }

    private static Key min(Key a, Key b) {
        return compare(a, b) <= 0 ? a : b;
    }

    private static Key max(Key a, Key b) {
        return compare(a, b) >= 0 ? a : b;
    }

    private static int compare(Key a, Key b) {
        int byEpoch = Long.compare(a.epoch(), b.epoch());
        return byEpoch != 0 ? byEpoch : Long.compare(a.seq(), b.seq());
    }

    /**
     * Applies the records at the given positions to the mirror, in order, committing every batch.
     *
     * @param keys positions from {@link #missing()}
     * @return how many records were applied
     * @throws SQLException when the principal or the mirror fails; the batch under way is rolled back
     */
    public int replay(List<Key> keys) throws SQLException {
        int applied = 0;
        for (int start = 0; start < keys.size(); start += BATCH) {
            List<Key> batch = keys.subList(start, Math.min(keys.size(), start + BATCH));
            applied += replayBatch(batch);
        }
        return applied;
    }

    private int replayBatch(List<Key> batch) throws SQLException {
        List<JournalRecord> records = fetch(batch);
        try (PreparedStatement ps = mirror.prepareStatement(
                "SELECT lockstep.replay_batch(?, ?, ?, ?, ?::timestamptz[], ?)")) {
            ps.setArray(1, mirror.createArrayOf("bigint", records.stream().map(JournalRecord::epoch).toArray()));
            ps.setArray(2, mirror.createArrayOf("bigint", records.stream().map(JournalRecord::seq).toArray()));
            ps.setArray(3, mirror.createArrayOf("text", records.stream().map(JournalRecord::gid).toArray()));
            ps.setArray(4, mirror.createArrayOf("text", records.stream().map(JournalRecord::origin).toArray()));
            ps.setArray(5, mirror.createArrayOf("text", records.stream().map(JournalRecord::committedAt).toArray()));
            ps.setArray(6, mirror.createArrayOf("text", records.stream().map(JournalRecord::changes).toArray()));
            ps.executeQuery().close();
            mirror.commit();
        } catch (SQLException e) {
            try {
                mirror.rollback();
            } catch (SQLException rollback) {
                e.addSuppressed(rollback);
            }
            throw e;
        }
        for (JournalRecord r : records) {
            onMirror.add(new Key(r.epoch(), r.seq()));
        }
        return records.size();
    }

    /** The records at the batch's positions: one index range scan, filtered here. */
    private List<JournalRecord> fetch(List<Key> batch) throws SQLException {
        Set<Key> wanted = new HashSet<>(batch);
        Key first = batch.get(0);
        Key last = batch.get(batch.size() - 1);
        List<JournalRecord> records = new ArrayList<>();
        try (PreparedStatement ps = principal.prepareStatement("SELECT epoch, seq, gid, origin,"
                + " to_json(committed_at) #>> '{}', changes::text FROM lockstep.journal"
                + " WHERE (epoch, seq) >= (?, ?) AND (epoch, seq) <= (?, ?) ORDER BY epoch, seq")) {
            ps.setLong(1, first.epoch());
            ps.setLong(2, first.seq());
            ps.setLong(3, last.epoch());
            ps.setLong(4, last.seq());
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    Key k = new Key(rs.getLong(1), rs.getLong(2));
                    if (wanted.contains(k)) {
                        records.add(new JournalRecord(k.epoch(), k.seq(), rs.getString(3), rs.getString(4),
                                rs.getString(5), rs.getString(6)));
                    }
                }
            }
        }
        return records;
    }

    /**
     * Starts the cut-over: in a transaction on the principal, takes its role lock exclusively,
     * which waits for every transaction that is writing mirrored tables (prepared ones included)
     * and holds new ones at their first write until {@link #finishCutOver} or {@link #abandonCutOver}.
     *
     * @param lockTimeout how long to wait for the writers under way
     * @throws SQLException 55P03 when they did not finish in time (nothing changed)
     */
    public void beginCutOver(Duration lockTimeout) throws SQLException {
        principal.setAutoCommit(false);
        try (Statement st = principal.createStatement()) {
            st.execute("SET LOCAL lock_timeout = '" + Math.max(1, lockTimeout.toMillis()) + "ms'");
            st.execute("LOCK TABLE lockstep.node_state IN ACCESS EXCLUSIVE MODE");
        } catch (SQLException e) {
            abandonCutOver();
            throw e;
        }
    }

    /**
     * Records the mirror SYNCHRONIZED on the principal, inside the cut-over transaction; it takes
     * effect with {@link #finishCutOver}.
     *
     * @param epoch          the principal's epoch
     * @param expectedChange the principal's mirroring change count when the catch-up began
     * @return false when the principal is no longer principal at the epoch, or its mirroring
     *         state changed since the catch-up began
     */
    public boolean markSynchronized(long epoch, long expectedChange) throws SQLException {
        try (PreparedStatement ps = principal.prepareStatement("SELECT lockstep.record_mirroring_state(?, 'SYNCHRONIZED', ?)")) {
            ps.setLong(1, epoch);
            ps.setLong(2, expectedChange);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getBoolean(1);
            }
        }
    }

    /** Ends the cut-over: commits on the principal, releasing the writers it held. */
    public void finishCutOver() throws SQLException {
        principal.commit();
        principal.setAutoCommit(true);
    }

    /** Ends the cut-over without a change. */
    public void abandonCutOver() throws SQLException {
        principal.rollback();
        principal.setAutoCommit(true);
    }

    /**
     * For continuous shipping (HIGH_PERFORMANCE): the positions of the records the mirror lacks,
     * from the last settled position on, without ever holding a writer. When the journal grew, the
     * pass notes its last sequence number and the transactions that hold the principal's role lock
     * (every writer holds it from before it draws its number until it ends); once none of them is
     * left, every record up to that number is committed or rolled back for good, and the scan that
     * follows moves the start of later scans there. Call {@link #replay} with the result before the
     * next call.
     *
     * @param epoch the principal's epoch
     * @return the positions, in order
     */
    public List<Key> unshipped(long epoch) throws SQLException {
        if (pendingFloor == null && grewSince(shipFrom, epoch)) {
            pendingFloor = new Key(epoch, lastSeq() + 1);
            pendingHolders = roleLockHolders();
        }
        Key settled = pendingFloor != null && !anyStillRunning(pendingHolders) ? pendingFloor : null;
        List<Key> missing = new ArrayList<>();
        scan(shipFrom, missing);
        if (settled != null) {
            shipFrom = settled;
            pendingFloor = null;
            // Later scans start at shipFrom: what lies below it is no longer needed.
            onMirror.removeIf(k -> compare(k, shipFrom) < 0);
        }
        return missing;
    }

    /** Where {@link #unshipped} scans from: below it, the mirror holds every record there is. */
    private Key shipFrom = START;
    /** A position that becomes settled once {@link #pendingHolders} have all ended. */
    private Key pendingFloor;
    private Array pendingHolders;

    private boolean grewSince(Key from, long epoch) throws SQLException {
        return from.epoch() != epoch || lastSeq() + 1 > from.seq();
    }

    private long lastSeq() throws SQLException {
        try (Statement st = principal.createStatement();
             ResultSet rs = st.executeQuery("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM lockstep.journal_seq")) {
            rs.next();
            return rs.getLong(1);
        }
    }

    /** The transactions (prepared ones included) holding a lock on the principal's node_state now. */
    private Array roleLockHolders() throws SQLException {
        try (Statement st = principal.createStatement(); ResultSet rs = st.executeQuery(
                "SELECT coalesce(array_agg(DISTINCT virtualtransaction), '{}') FROM pg_locks"
                        + " WHERE relation = 'lockstep.node_state'::regclass AND granted AND pid IS DISTINCT FROM pg_backend_pid()")) {
            rs.next();
            return rs.getArray(1);
        }
    }

    private boolean anyStillRunning(Array holders) throws SQLException {
        try (PreparedStatement ps = principal.prepareStatement("SELECT EXISTS (SELECT 1 FROM pg_locks"
                + " WHERE relation = 'lockstep.node_state'::regclass AND virtualtransaction = ANY (?::text[]))")) {
            ps.setArray(1, holders);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getBoolean(1);
            }
        }
    }
}
