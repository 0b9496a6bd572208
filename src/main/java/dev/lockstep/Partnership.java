package dev.lockstep;

import dev.lockstep.core.PartnershipRecord;
import dev.lockstep.commit.InDoubtResolver;

import javax.sql.DataSource;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Operations on the partnership a {@link LockstepDataSource} mirrors: attaching tables,
 * verifying that both nodes are identical and settling in-doubt transactions.
 */
public final class Partnership {

    private final LockstepDataSource dataSource;
    private final Coordinator coordinator;

    Partnership(LockstepDataSource dataSource, Coordinator coordinator) {
        this.dataSource = dataSource;
        this.coordinator = coordinator;
    }

    /** The partnership's name. */
    public String name() {
        return coordinator.config().partnership();
    }

    /** The epoch this coordinator commits in. */
    public long epoch() {
        return coordinator.epoch();
    }

    /**
     * What this coordinator knows of the partnership, as Lync's {@code Get-CsDatabaseMirrorState}
     * shows it: roles, epoch, mirroring state, each node's health, the witness and quorum.
     *
     * @return the status
     */
    public PartnershipStatus status() {
        return coordinator.status();
    }

    /**
     * Planned failover, with no loss: {@code newPrincipal} becomes principal at the next epoch
     * and the other node continues as a synchronized mirror; naming the other node fails back.
     * Needs a witness and a SYNCHRONIZED partnership.
     *
     * @param newPrincipal the node to become principal
     * @return the new partnership record
     * @throws SQLException 0A000 without a witness; 55000 when the partnership is not
     *                      SYNCHRONIZED or the node is already principal; 55P03 when running
     *                      transactions did not end within the call timeout (nothing changed)
     */
    public PartnershipRecord failover(String newPrincipal) throws SQLException {
        return coordinator.plannedFailover(newPrincipal);
    }

    /**
     * Forced service: the mirror becomes principal although it may lack transactions that the
     * lost principal committed alone. Refused while the principal is reachable, while the
     * witness still sees it (its lease may be valid), or without explicit consent. Leaves the
     * partnership SUSPENDED.
     *
     * <p>Without a witness (HIGH_SAFETY) this is the only failover, and nothing but this
     * coordinator's view shows the principal is gone: the operator must know it is down. The old
     * principal, should it return, is made mirror by the first coordinator that reaches both.
     *
     * @param allowDataLoss must be true: the operator accepts losing what the mirror lacks
     * @return the new partnership record
     * @throws SQLException 55000 when refused (the message says why)
     */
    public PartnershipRecord forceService(boolean allowDataLoss) throws SQLException {
        return coordinator.forceService(allowDataLoss);
    }

    /**
     * Suspends mirroring (SQL Server's {@code SET PARTNER SUSPEND}): the principal commits alone
     * and its journal keeps everything for the mirror; nothing catches the mirror up until
     * {@link #resume()}. The state is recorded at the witness and on the principal, so it
     * survives restarts of nodes and coordinators. Automatic failover is disarmed meanwhile.
     *
     * @return the new partnership record (SUSPENDED)
     * @throws SQLException 55000 when the partnership is already SUSPENDED or a role change is
     *                      under way; 40001 when it changed meanwhile (retry)
     */
    public PartnershipRecord suspend() throws SQLException {
        return coordinator.suspend();
    }

    /**
     * Resumes mirroring (SQL Server's {@code SET PARTNER RESUME}): the partnership goes
     * SYNCHRONIZING and the mirror catches up from its position, then SYNCHRONIZED.
     *
     * @return the new partnership record (SYNCHRONIZING)
     * @throws SQLException 55000 unless the partnership is SUSPENDED or DISCONNECTED; 40001 when it
     *                      changed meanwhile (retry)
     */
    public PartnershipRecord resume() throws SQLException {
        return coordinator.resume();
    }

    /**
     * The last catch-up this coordinator ran: a mirror that was DISCONNECTED replayed what it
     * lacked and the partnership became SYNCHRONIZED again. Another coordinator of the
     * partnership may have run it instead.
     *
     * @return the catch-up, if this coordinator completed one
     */
    public java.util.Optional<CatchUpResult> lastCatchUp() {
        return java.util.Optional.ofNullable(coordinator.lastCatchUp());
    }

    /**
     * The transactions that returning nodes held and the principal lacked, found before those
     * nodes were re-seeded (they committed there alone before a forced service): each with its
     * original epoch and position and its row images. Kept on the principal that found them; a
     * later failover does not carry the report over to the other node.
     *
     * @return the reported transactions, in the order they committed on their node
     * @throws SQLException when the principal cannot be read
     */
    public List<DivergentTransaction> divergenceReport() throws SQLException {
        List<DivergentTransaction> out = new ArrayList<>();
        try (Connection c = coordinator.principalPool().getConnection();
             PreparedStatement ps = c.prepareStatement("SELECT node_name, epoch, seq, gid, origin, committed_at, changes::text,"
                     + " principal_name, principal_epoch, detected_at FROM lockstep.divergence_report ORDER BY node_name, epoch, seq")) {
            ps.setQueryTimeout((int) Math.max(1, coordinator.config().remoteCallTimeout().toSeconds()));
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    out.add(new DivergentTransaction(rs.getString(1), rs.getLong(2), rs.getLong(3), rs.getString(4), rs.getString(5),
                            rs.getObject(6, java.time.OffsetDateTime.class), rs.getString(7), rs.getString(8), rs.getLong(9),
                            rs.getObject(10, java.time.OffsetDateTime.class)));
                }
            } finally {
                c.rollback();
            }
        }
        return out;
    }

    /**
     * Whether the principal records that its mirror must be seeded (a snapshot copy of every
     * attached table) rather than caught up from the journal: the journal limit was exceeded
     * while the mirror was away, the mirror diverged, or it is a new, blank node. The mirror is
     * seeded by itself once reachable (after {@link #resume()} if SUSPENDED); the mark is cleared
     * when it is SYNCHRONIZED.
     *
     * @return true while the mirror awaits seeding
     * @throws SQLException when the principal cannot be read
     */
    public boolean mirrorNeedsSeeding() throws SQLException {
        try (Connection c = coordinator.principalPool().getConnection();
             PreparedStatement ps = c.prepareStatement("SELECT lockstep.mirror_needs_seeding()")) {
            ps.setQueryTimeout((int) Math.max(1, coordinator.config().remoteCallTimeout().toSeconds()));
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getBoolean(1);
            } finally {
                c.rollback();
            }
        }
    }

    /**
     * Attaches an existing table to mirroring with statement-level capture. The table must have a
     * primary key and identical contents on both nodes.
     *
     * @param table table name, optionally schema-qualified
     * @throws SQLException 42P16 when the table has no primary key (nothing is installed), or the
     *                      error of either node
     */
    public void attach(String table) throws SQLException {
        attach(table, CaptureMode.STATEMENT);
    }

    /**
     * Attaches an existing table to mirroring with the given capture mode, on both nodes in one
     * two-phase commit.
     *
     * @param table table name, optionally schema-qualified
     * @param mode  capture mode
     * @throws SQLException as {@link #attach(String)}
     */
    public void attach(String table, CaptureMode mode) throws SQLException {
        try (Connection c = dataSource.getConnection();
             PreparedStatement ps = c.prepareStatement("SELECT lockstep.attach(?::regclass, ?)")) {
            ps.setString(1, table);
            ps.setString(2, mode.sqlName());
            ps.execute();
        }
    }

    /** The mirrored tables, as the principal lists them. */
    public List<String> attachedTables() throws SQLException {
        List<String> tables = new ArrayList<>();
        for (Map<String, Object> row : query(coordinator.principalPool(), "SELECT table_name FROM lockstep.attached ORDER BY 1")) {
            tables.add((String) row.get("table_name"));
        }
        return tables;
    }

    /**
     * Compares every attached table (row count and an order-independent digest of its rows) and
     * every sequence they draw from on both nodes. Meaningful at a quiescent point.
     *
     * @return the comparison
     */
    public VerifyReport verify() throws SQLException {
        List<VerifyReport.TableChecksum> tables = new ArrayList<>();
        for (String table : attachedTables()) {
            String sql = "SELECT row_count, digest::text FROM lockstep.checksum('" + table.replace("'", "''") + "')";
            Map<String, Object> p = query(coordinator.principalPool(), sql).get(0);
            Map<String, Object> m = query(coordinator.mirrorPool(), sql).get(0);
            tables.add(new VerifyReport.TableChecksum(table, (Long) p.get("row_count"), (String) p.get("digest"),
                    (Long) m.get("row_count"), (String) m.get("digest")));
        }
        String seqSql = "SELECT s, lockstep.sequence_position(s) AS pos FROM"
                + " (SELECT DISTINCT unnest(sequences) AS s FROM lockstep.attached) x ORDER BY 1";
        Map<String, Long> mirrorPositions = new LinkedHashMap<>();
        for (Map<String, Object> row : query(coordinator.mirrorPool(), seqSql)) {
            mirrorPositions.put((String) row.get("s"), (Long) row.get("pos"));
        }
        List<VerifyReport.SequencePosition> sequences = new ArrayList<>();
        for (Map<String, Object> row : query(coordinator.principalPool(), seqSql)) {
            String s = (String) row.get("s");
            sequences.add(new VerifyReport.SequencePosition(s, (Long) row.get("pos"), mirrorPositions.get(s)));
        }
        return new VerifyReport(tables, sequences);
    }

    /**
     * Runs one pass of in-doubt resolution now (it also runs at start-up and periodically).
     *
     * @return what it settled and what it left waiting
     */
    public InDoubtResolver.Result resolveInDoubt() {
        return coordinator.resolver().resolve();
    }

    private static List<Map<String, Object>> query(DataSource pool, String sql) throws SQLException {
        List<Map<String, Object>> rows = new ArrayList<>();
        try (Connection c = pool.getConnection(); PreparedStatement ps = c.prepareStatement(sql)) {
            try (ResultSet rs = ps.executeQuery()) {
                int n = rs.getMetaData().getColumnCount();
                while (rs.next()) {
                    Map<String, Object> row = new LinkedHashMap<>();
                    for (int i = 1; i <= n; i++) {
                        row.put(rs.getMetaData().getColumnLabel(i), rs.getObject(i));
                    }
                    rows.add(row);
                }
            } finally {
                c.rollback();
            }
        }
        return rows;
    }
}
