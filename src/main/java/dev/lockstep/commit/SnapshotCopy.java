package dev.lockstep.commit;

import dev.lockstep.jdbc.SqlStates;
import org.postgresql.PGConnection;
import org.postgresql.copy.CopyIn;
import org.postgresql.copy.CopyOut;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * Seeds a mirror with a consistent copy of the principal: in one {@code REPEATABLE READ}
 * snapshot on the principal it reads every attached table, the schema the mirror lacks for them,
 * and the journal records that snapshot holds; on the mirror, in one transaction applied as
 * replica (no user trigger fires), it creates what is missing, replaces every attached table's
 * rows, attaches them, moves their sequences to at least the principal's positions (I3) and
 * replaces its journal with the snapshot's. Catch-up then replays what committed after the
 * snapshot: the mirror holds exactly the snapshot's records, so a transaction in flight when the
 * snapshot was taken is missing from it and found by the replay (I6).
 */
public final class SnapshotCopy {

    /**
     * What a copy did.
     *
     * @param tables         attached tables copied
     * @param rows           rows copied into them
     * @param journalRecords journal records the snapshot held, now on the mirror too
     */
    public record Result(int tables, long rows, long journalRecords) {
    }

    private record Table(String name, String mode, List<String> columns, List<String> sequences) {
    }

    private record Ddl(int step, String statement) {
    }

    private static final int FOREIGN_KEYS = 6;

    private SnapshotCopy() {
    }

    /**
     * Copies the principal's attached tables and journal onto the mirror.
     *
     * @param principal a connection to the principal, autocommit on; a read-only snapshot
     *                  transaction is opened and ended here
     * @param mirror    a connection to the mirror with {@code session_replication_role = replica};
     *                  its transaction is committed here, or rolled back on failure (nothing changes)
     * @param mirrorName the mirror's name, for messages
     * @param deadline  the deadline of the whole copy: statements still running then are
     *                  cancelled and nothing is committed
     * @return what was copied
     * @throws SQLException when either node fails; the mirror is left as it was
     */
    public static Result copy(Connection principal, Connection mirror, String mirrorName, long epoch, Duration deadline)
            throws SQLException {
        // The tables are locked (ACCESS SHARE) before the snapshot is taken, as pg_dump does: a
        // table rewrite or other DDL committed between the snapshot and its COPY would otherwise
        // make it look empty or differently shaped in the snapshot.
        List<String> names = attachedNames(principal);
        int principalTimeout = principal.getNetworkTimeout();
        int mirrorTimeout = mirror.getNetworkTimeout();
        principal.setNetworkTimeout(Runnable::run, (int) Math.min(Integer.MAX_VALUE, deadline.toMillis() + 5000));
        mirror.setNetworkTimeout(Runnable::run, (int) Math.min(Integer.MAX_VALUE, deadline.toMillis() + 5000));
        principal.setAutoCommit(false);
        mirror.setAutoCommit(false);
        CopyDeadline whole = new CopyDeadline(deadline, List.of(principal, mirror));
        try {
            try (Statement st = principal.createStatement()) {
                st.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
                st.execute("SET LOCAL statement_timeout = " + deadline.toMillis());
                // Text COPY (user-defined types) in the form the mirror's session parses.
                st.execute("SET LOCAL DateStyle = 'ISO, YMD'");
                st.execute("SET LOCAL IntervalStyle = 'postgres'");
                st.execute("SET LOCAL extra_float_digits = 3");
                st.execute("SET LOCAL bytea_output = 'hex'");
                if (!names.isEmpty()) {
                    st.execute("LOCK TABLE " + String.join(", ", names) + " IN ACCESS SHARE MODE");
                }
            }
            try (Statement st = mirror.createStatement()) {
                st.execute("SET LOCAL statement_timeout = " + deadline.toMillis());
                st.execute("SELECT set_config('lockstep.internal', 'on', true)");
            }
            enrol(mirror, mirrorName, epoch);
            Result result = copyInSnapshot(principal, mirror, names, whole);
            if (!whole.beginCommit()) {
                whole.check();
            }
            mirror.commit();
            principal.commit();
            return result;
        } catch (SQLException | RuntimeException e) {
            rollbackQuietly(mirror, e);
            rollbackQuietly(principal, e);
            if (whole.expired()) {
                throw SqlStates.error(SqlStates.QUERY_CANCELED, "lockstep: seeding mirror node " + mirrorName + " did not finish"
                        + " within seedingTimeout (" + whole.limit() + "), nothing changed on it: " + e.getMessage(), e);
            }
            if (e instanceof SQLException sql) {
                throw SqlStates.error(sql.getSQLState(), "lockstep: seeding mirror node " + mirrorName + " failed, nothing"
                        + " changed on it: " + sql.getMessage(), sql);
            }
            throw e;
        } finally {
            whole.close();
            principal.setAutoCommit(true);
            mirror.setAutoCommit(true);
            principal.setNetworkTimeout(Runnable::run, principalTimeout);
            mirror.setNetworkTimeout(Runnable::run, mirrorTimeout);
        }
    }

    /**
     * In the mirror's seeding transaction: it must still be a mirror of this epoch or an earlier
     * one (a node that a forced service made principal meanwhile is never overwritten); it joins
     * the principal's epoch with the copy.
     */
    private static void enrol(Connection m, String mirrorName, long epoch) throws SQLException {
        try (PreparedStatement ps = m.prepareStatement("SELECT role, epoch FROM lockstep.node_state FOR UPDATE")) {
            try (ResultSet rs = ps.executeQuery()) {
                if (!rs.next() || !"mirror".equals(rs.getString(1)) || rs.getLong(2) > epoch) {
                    throw SqlStates.error(SqlStates.FENCED, "lockstep: node " + mirrorName + " is not a mirror at or before epoch "
                            + epoch + (rs.getRow() == 0 ? "" : " (it is " + rs.getString(1) + " at epoch " + rs.getLong(2) + ")")
                            + "; it is not seeded", null);
                }
            }
        }
        try (PreparedStatement ps = m.prepareStatement("UPDATE lockstep.node_state SET epoch = ?, changed_at = clock_timestamp()"
                + " WHERE epoch < ?")) {
            ps.setLong(1, epoch);
            ps.setLong(2, epoch);
            ps.executeUpdate();
        }
    }

    private static List<String> attachedNames(Connection p) throws SQLException {
        List<String> names = new ArrayList<>();
        try (Statement st = p.createStatement(); ResultSet rs = st.executeQuery("SELECT table_name FROM lockstep.attached ORDER BY 1")) {
            while (rs.next()) {
                names.add(rs.getString(1));
            }
        }
        if (!p.getAutoCommit()) {
            p.rollback();
        }
        return names;
    }

    private static Result copyInSnapshot(Connection p, Connection m, List<String> locked, CopyDeadline deadline)
            throws SQLException {
        List<Table> tables = attached(p);
        if (!tables.stream().map(Table::name).sorted().toList().equals(locked.stream().sorted().toList())) {
            throw SqlStates.error(SqlStates.SERIALIZATION_FAILURE, "lockstep: the attached tables changed while seeding began; retry",
                    null);
        }
        List<String> foreignKeys = new ArrayList<>();
        for (Table t : tables) {
            deadline.check();
            boolean exists = bool(m, "SELECT to_regclass(?) IS NOT NULL", t.name());
            for (Ddl d : ddl(p, t.name())) {
                if (d.step() == FOREIGN_KEYS) {
                    if (!exists) {
                        foreignKeys.add(d.statement());
                    }
                } else if (d.step() <= 1 || !exists) {
                    execute(m, d.statement());
                }
            }
        }
        for (String fk : foreignKeys) {
            execute(m, fk);
        }
        if (!tables.isEmpty()) {
            emptyMirroredTables(m, tables);
        }
        long rows = 0;
        for (Table t : tables) {
            deadline.check();
            String cols = String.join(", ", t.columns());
            // Binary only for built-in types: array and record receivers check type oids, which differ between nodes.
            String format = bool(p, "SELECT coalesce(bool_and(atttypid < 16384), true) FROM pg_attribute"
                    + " WHERE attrelid = ?::regclass AND attnum > 0 AND NOT attisdropped", t.name()) ? "binary" : "text";
            rows += stream(p, "COPY " + t.name() + " (" + cols + ") TO STDOUT (FORMAT " + format + ")",
                    m, "COPY " + t.name() + " (" + cols + ") FROM STDIN (FORMAT " + format + ")");
        }
        attach(m, tables);
        copySequences(p, m, tables);
        long journal = copyJournal(p, m);
        return new Result(tables.size(), rows, journal);
    }

    /**
     * Without CASCADE: a table only the mirror holds that references a mirrored one is the mirror
     * owner's data, which seeding must not empty; seeding is refused until it is dealt with.
     */
    private static void emptyMirroredTables(Connection m, List<Table> tables) throws SQLException {
        try (Statement st = m.createStatement()) {
            st.execute("TRUNCATE " + String.join(", ", tables.stream().map(Table::name).toList()));
        } catch (SQLException e) {
            if (!SqlStates.NOT_SUPPORTED.equals(e.getSQLState())) {
                throw e;
            }
            throw SqlStates.error(e.getSQLState(), "a table that is not mirrored references a mirrored table there, and seeding"
                    + " empties the mirrored tables; truncate or drop that table on the mirror, or attach it on the principal: "
                    + e.getMessage(), e);
        }
    }

    private static List<Table> attached(Connection p) throws SQLException {
        List<Table> tables = new ArrayList<>();
        try (Statement st = p.createStatement();
             ResultSet rs = st.executeQuery("SELECT table_name, capture_mode, data_columns, sequences FROM lockstep.attached"
                     + " ORDER BY table_name")) {
            while (rs.next()) {
                tables.add(new Table(rs.getString(1), rs.getString(2), List.of((String[]) rs.getArray(3).getArray()),
                        List.of((String[]) rs.getArray(4).getArray())));
            }
        }
        return tables;
    }

    private static List<Ddl> ddl(Connection p, String table) throws SQLException {
        List<Ddl> out = new ArrayList<>();
        try (PreparedStatement ps = p.prepareStatement("SELECT step, statement FROM lockstep.seed_ddl(?::regclass)")) {
            ps.setString(1, table);
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    out.add(new Ddl(rs.getInt(1), rs.getString(2)));
                }
            }
        }
        out.sort(java.util.Comparator.comparingInt(Ddl::step));
        return out;
    }

    /** The mirror's attachments become the principal's: capture triggers, appliers, dispatcher. */
    private static void attach(Connection m, List<Table> tables) throws SQLException {
        try (PreparedStatement ps = m.prepareStatement("DELETE FROM lockstep.attached WHERE NOT (table_name = ANY (?))")) {
            ps.setArray(1, m.createArrayOf("text", tables.stream().map(Table::name).toArray()));
            ps.executeUpdate();
        }
        execute(m, "SELECT lockstep.generate_dispatcher()");
        try (PreparedStatement ps = m.prepareStatement("SELECT lockstep.attach_local(?::regclass, ?)")) {
            for (Table t : tables) {
                ps.setString(1, t.name());
                ps.setString(2, t.mode());
                ps.executeQuery().close();
            }
        }
    }

    /**
     * Sequences are read after the rows, outside the snapshot (sequences are not transactional),
     * so the mirror's are at or beyond every value the copied rows hold; a sequence the principal
     * never used starts afresh on the mirror too.
     */
    private static void copySequences(Connection p, Connection m, List<Table> tables) throws SQLException {
        Set<String> sequences = new LinkedHashSet<>();
        tables.forEach(t -> sequences.addAll(t.sequences()));
        try (PreparedStatement read = p.prepareStatement("SELECT lockstep.sequence_position(?),"
                + " (SELECT seqstart FROM pg_sequence WHERE seqrelid = ?::regclass)");
             PreparedStatement set = m.prepareStatement("SELECT setval(?::regclass, ?, ?)")) {
            for (String s : sequences) {
                read.setString(1, s);
                read.setString(2, s);
                try (ResultSet rs = read.executeQuery()) {
                    rs.next();
                    long position = rs.getLong(1);
                    boolean used = !rs.wasNull();
                    set.setString(1, s);
                    set.setLong(2, used ? position : rs.getLong(2));
                    set.setBoolean(3, used);
                }
                set.executeQuery().close();
            }
        }
    }

    /**
     * The mirror's journal becomes the snapshot's, with the principal's trim position. In-doubt
     * bars (epoch 0) stay, but not for a transaction the principal holds committed.
     */
    private static long copyJournal(Connection p, Connection m) throws SQLException {
        execute(m, "CREATE TEMPORARY TABLE lockstep_seed_journal (LIKE lockstep.journal) ON COMMIT DROP");
        long n = stream(p, "COPY (SELECT epoch, seq, gid, origin, committed_at, changes FROM lockstep.journal WHERE epoch > 0)"
                        + " TO STDOUT (FORMAT binary)",
                m, "COPY lockstep_seed_journal (epoch, seq, gid, origin, committed_at, changes) FROM STDIN (FORMAT binary)");
        execute(m, "DELETE FROM lockstep.journal j WHERE j.epoch > 0"
                + " OR j.gid IN (SELECT gid FROM lockstep_seed_journal)");
        execute(m, "INSERT INTO lockstep.journal SELECT * FROM lockstep_seed_journal");
        long epoch;
        long seq;
        try (Statement st = p.createStatement();
             ResultSet rs = st.executeQuery("SELECT journal_trimmed_epoch, journal_trimmed_seq FROM lockstep.node_state")) {
            rs.next();
            epoch = rs.getLong(1);
            seq = rs.getLong(2);
        }
        try (PreparedStatement ps = m.prepareStatement(
                "UPDATE lockstep.node_state SET journal_trimmed_epoch = ?, journal_trimmed_seq = ?")) {
            ps.setLong(1, epoch);
            ps.setLong(2, seq);
            ps.executeUpdate();
        }
        return n;
    }

    /** Streams one COPY from the principal into one COPY on the mirror; returns the rows. */
    private static long stream(Connection p, String out, Connection m, String in) throws SQLException {
        CopyOut from = p.unwrap(PGConnection.class).getCopyAPI().copyOut(out);
        CopyIn to;
        try {
            to = m.unwrap(PGConnection.class).getCopyAPI().copyIn(in);
        } catch (SQLException e) {
            from.cancelCopy();
            throw e;
        }
        try {
            byte[] buf;
            while ((buf = from.readFromCopy()) != null) {
                to.writeToCopy(buf, 0, buf.length);
            }
            return to.endCopy();
        } catch (SQLException e) {
            if (to.isActive()) {
                to.cancelCopy();
            }
            if (from.isActive()) {
                from.cancelCopy();
            }
            throw e;
        }
    }

    private static boolean bool(Connection c, String sql, String arg) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement(sql)) {
            ps.setString(1, arg);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getBoolean(1);
            }
        }
    }

    private static void execute(Connection c, String sql) throws SQLException {
        try (Statement st = c.createStatement()) {
            st.execute(sql);
        } catch (SQLException e) {
            throw SqlStates.error(e.getSQLState(), e.getMessage() + " [while running: " + sql + "]", e);
        }
    }

    private static void rollbackQuietly(Connection c, Exception cause) {
        try {
            c.rollback();
        } catch (SQLException e) {
            cause.addSuppressed(e);
        }
    }
}
