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
     * What this coordinator has counted and measured: transactions mirrored and committed alone,
     * records applied on the mirror, the send queue, in-doubt resolutions, failovers and catch-up
     * progress. Reads nothing remote (measurements are taken each heartbeat).
     *
     * @return the figures now
     */
    public MirroringStatistics statistics() {
        return coordinator.telemetry().snapshot();
    }

    /**
     * Adds a listener of this partnership's events from now on, as
     * {@link LockstepConfig.Builder#listener} does from the start.
     *
     * @param listener told of every state change, failover, node health change and threshold crossed
     */
    public void addListener(dev.lockstep.events.LockstepListener listener) {
        coordinator.telemetry().addListener(java.util.Objects.requireNonNull(listener, "listener"));
    }

    /**
     * Adds a receiver of every mirrored commit's timings (total and on the mirror), for metrics.
     *
     * @param timings called on the committing thread; must be cheap and must not throw
     */
    public void addCommitTimings(dev.lockstep.commit.CommitTimings timings) {
        coordinator.telemetry().addCommitTimings(java.util.Objects.requireNonNull(timings, "timings"));
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
     * Re-seeds the mirror online (SQL Server: re-initialising it from a backup): for a mirror that
     * verify found beyond repair, or a new server put in place of a lost one. Mirroring is
     * suspended, the mirror marked for seeding, and resumed: a consistent snapshot of every
     * attached table, its schema and sequence positions is copied from the principal, then the
     * journal from the snapshot's position, while the application keeps writing (exposed meanwhile).
     * Wait for {@link #status()} to say SYNCHRONIZED (SYNCHRONIZING in HIGH_PERFORMANCE).
     *
     * @return the partnership record (SYNCHRONIZING)
     * @throws SQLException 55000 while a role change is under way; 40001 when the record changed meanwhile (retry)
     */
    public PartnershipRecord reseedMirror() throws SQLException {
        return coordinator.reseedMirror();
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
     * Verifies the partnership with {@link VerifyOptions#defaults()}; see {@link #verify(VerifyOptions)}.
     *
     * @return the comparison
     * @throws SQLException as {@link #verify(VerifyOptions)}
     */
    public VerifyReport verify() throws SQLException {
        return verify(VerifyOptions.defaults());
    }

    /**
     * Compares both nodes: for every attached table its definition (columns with type,
     * nullability and default, column order, constraints including the primary key, indexes,
     * user triggers, attachment), its row count and an order-independent digest of its rows; for
     * a table whose digest differs, every differing primary key, classified as
     * {@link dev.lockstep.core.RowDifference.Kind#CHANGED CHANGED},
     * {@link dev.lockstep.core.RowDifference.Kind#MISSING_ON_MIRROR MISSING_ON_MIRROR} or
     * {@link dev.lockstep.core.RowDifference.Kind#EXTRA_ON_MIRROR EXTRA_ON_MIRROR} (at most
     * {@link VerifyOptions#maxKeysPerTable()} named, all counted); and every sequence the tables
     * draw from (the mirror must not be behind, invariant I3).
     *
     * <p>Each table is read in one snapshot per node, the two snapshots taken moments apart, and
     * rows are compared by streaming both nodes' (key, row hash) in key order, so memory stays
     * bounded. Nothing is locked: the result is exact at a quiescent point; while transactions
     * commit, a table they write may show differences that are only in flight.
     * {@link #repair(VerifyOptions)} compares under locks.
     *
     * @param options the cap on keys named per table and the deadlines
     * @return the comparison
     * @throws SQLException with the node's SQLSTATE and a message naming the node and table when
     *                      a node fails or cannot be reached (08001), or a statement exceeds its
     *                      deadline (57014)
     */
    public VerifyReport verify(VerifyOptions options) throws SQLException {
        return new Verifier(coordinator, options).verify();
    }

    /**
     * Repairs with {@link VerifyOptions#defaults()}; see {@link #repair(VerifyOptions)}.
     *
     * @return what was repaired
     * @throws SQLException as {@link #repair(VerifyOptions)}
     */
    public RepairReport repair() throws SQLException {
        return repair(VerifyOptions.defaults());
    }

    /**
     * Makes the mirror's copy equal to the principal's, as SQL Server's automatic page repair
     * replaces a damaged page from the partner: for each attached table whose rows differ, the
     * principal's copy is locked in SHARE mode (its writers wait, so no commit races the repair;
     * the wait for the lock is bounded by {@link VerifyOptions#lockTimeout()}), the mirror's in
     * EXCLUSIVE mode, the differing keys are found as {@link #verify(VerifyOptions)} finds them,
     * and in one mirror transaction per table the mirror's rows for those keys are deleted and the
     * principal's copied in, with {@code session_replication_role = replica} so that no capture,
     * user trigger or foreign key action fires. Mirror sequences that are behind are moved to the
     * principal's position.
     *
     * <p>Definitions are reported, never repaired: a table whose definition differs between the
     * nodes (a column, type, constraint, index or trigger, or a table missing on one node) is left
     * alone and listed as skipped; make the definitions agree (DDL through the data source, or on
     * the node that is wrong), then repair again. Repair needs a SYNCHRONIZED partnership: a
     * mirror that is behind is caught up from the journal, not repaired. Each table is repaired in
     * its own transaction, so a failure leaves the tables before it repaired and the rest as they
     * were. Verify afterwards to confirm.
     *
     * @param options the deadlines (the key cap does not apply: every differing key is repaired)
     * @return what was repaired, skipped and left as a schema difference
     * @throws SQLException 55000 unless the partnership is SYNCHRONIZED; 25006 when a node no
     *                      longer holds its role at this coordinator's epoch; 55P03 when a table's
     *                      lock was not granted within the lock timeout; XX001 when a table changed
     *                      under the repair (that table is left as it was); any node failure with
     *                      its SQLSTATE; each message names the node and the table
     */
    public RepairReport repair(VerifyOptions options) throws SQLException {
        return new Verifier(coordinator, options).repair();
    }

    /**
     * Runs one pass of in-doubt resolution now (it also runs at start-up and periodically).
     *
     * @return what it settled and what it left waiting
     */
    public InDoubtResolver.Result resolveInDoubt() {
        InDoubtResolver.Result r = coordinator.resolver().resolve();
        coordinator.telemetry().inDoubtResolved(r);
        return r;
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
