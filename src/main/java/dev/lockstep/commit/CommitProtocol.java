package dev.lockstep.commit;

import dev.lockstep.core.CommitStep;
import dev.lockstep.core.Gid;
import dev.lockstep.jdbc.SqlStates;
import dev.lockstep.jdbc.TransactionCommitter;

import javax.sql.DataSource;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;
import java.util.function.LongSupplier;
import java.util.function.Supplier;

/**
 * The mirrored commit: drain the change set into a journal record and prepare on the principal,
 * then apply the record and commit it on the mirror in one step, then commit the principal. A
 * commit is acknowledged once both nodes hold it durably; anything a failure leaves prepared is
 * settled by {@link InDoubtResolver}.
 *
 * <p>The mirror is the last participant of the two-phase commit, so it needs no prepare of its
 * own: its commit is the decision. Once the principal is prepared, the mirror's outcome decides
 * the principal's, and the mirror's journal records it (a committed record, or the bar that
 * in-doubt resolution puts in its place). Every state a failure can leave is one the in-doubt
 * rules already settle: prepared on the principal and committed on the mirror commits; prepared
 * on the principal and barred on the mirror rolls back. Preparing the mirror as well would cost a
 * round trip and two more WAL flushes on every commit and decide nothing more.
 */
public final class CommitProtocol implements TransactionCommitter {

    /**
     * What the protocol needs to know about its partnership.
     *
     * @param partnership   partnership name
     * @param coordinatorId this coordinator's id
     * @param principalNode name of the principal
     * @param mirrorNode    name of the mirror
     * @param callTimeout   deadline of each call to a node
     */
    public record Settings(String partnership, String coordinatorId, String principalNode, String mirrorNode,
                           Duration callTimeout) {
    }

    /**
     * Told when a link to a node broke, so that the pool drops its other connections to that
     * node, which are most likely broken too, instead of handing them to the next transaction.
     */
    public interface LinkLoss {
        /** The link to the principal broke. */
        void principalLinkLost();

        /** The link to the mirror broke. */
        void mirrorLinkLost();

        /**
         * The principal refused a commit (40001) because its mirroring state does not allow the
         * path taken: another coordinator recorded the mirror lost, or caught it up, so this
         * coordinator's view is stale until it looks again; every commit meanwhile would be
         * refused too.
         */
        void viewMayBeStale();
    }

    /** Where a transaction's changes go, as the coordinator's quorum rules decide. */
    public enum Path {
        /** To both nodes, with two-phase commit. */
        LOCKSTEP,
        /** To the principal alone, under the coordinator's lease; the journal keeps them for the mirror. */
        EXPOSED,
        /** Nowhere: the principal has no quorum. Transactions that change nothing mirrored still commit. */
        REFUSED,
        /**
         * Nowhere: the principal lacks commits its SYNCHRONIZED mirror holds (it came back as an
         * older copy), so it takes no writes in this epoch. Transactions that change nothing
         * mirrored still commit.
         */
        HALTED
    }

    private final Settings settings;
    private final LongSupplier epoch;
    private final Supplier<Path> path;
    private final DataSource mirrorPool;
    private final CommitObserver observer;
    private final Set<String> inFlight;
    private final LinkLoss linkLoss;
    private final CommitTimings timings;
    private final BooleanSupplier aloneMayBeAcknowledged;
    private static final int SOCKET_MARGIN_MILLIS = 5000;
    /** One round trip; the mirror's sessions run with synchronous_commit on, so the commit is durable when it returns. */
    private static final String APPLY_AND_COMMIT = "SELECT lockstep.apply(?, ?, ?, ?, ?::timestamptz, ?); COMMIT";

    private final AtomicLong counter = new AtomicLong();

    /**
     * @param settings      the partnership
     * @param epoch         the epoch this coordinator acts in
     * @param mirrorPool    connections to the mirror with session_replication_role = replica, autocommit off
     * @param observer      told of each step
     * @param inFlight      gids this coordinator is working on; in-doubt resolution leaves them alone
     * @param linkLoss      told when a link to a node broke
     */
    public CommitProtocol(Settings settings, LongSupplier epoch, DataSource mirrorPool, CommitObserver observer,
                          Set<String> inFlight, LinkLoss linkLoss) {
        this(settings, epoch, () -> Path.LOCKSTEP, mirrorPool, observer, inFlight, linkLoss);
    }

    /**
     * @param settings      the partnership
     * @param epoch         the epoch this coordinator acts in
     * @param path          where commits go now; asked at every commit
     * @param mirrorPool    connections to the mirror with session_replication_role = replica, autocommit off
     * @param observer      told of each step
     * @param inFlight      gids this coordinator is working on; in-doubt resolution leaves them alone
     * @param linkLoss      told when a link to a node broke
     */
    public CommitProtocol(Settings settings, LongSupplier epoch, Supplier<Path> path, DataSource mirrorPool,
                          CommitObserver observer, Set<String> inFlight, LinkLoss linkLoss) {
        this(settings, epoch, path, mirrorPool, observer, inFlight, linkLoss, CommitTimings.NONE, () -> true);
    }

    /**
     * @param settings      the partnership
     * @param epoch         the epoch this coordinator acts in
     * @param path          where commits go now; asked at every commit
     * @param mirrorPool    connections to the mirror with session_replication_role = replica, autocommit off
     * @param observer      told of each step
     * @param inFlight      gids this coordinator is working on; in-doubt resolution leaves them alone
     * @param linkLoss      told when a link to a node broke
     * @param timings       told how long each mirrored commit took
     * @param aloneMayBeAcknowledged asked right after an exposed commit returned: whether the
     *                      principal's lease still holds, so that it may be acknowledged
     */
    public CommitProtocol(Settings settings, LongSupplier epoch, Supplier<Path> path, DataSource mirrorPool,
                          CommitObserver observer, Set<String> inFlight, LinkLoss linkLoss, CommitTimings timings,
                          BooleanSupplier aloneMayBeAcknowledged) {
        this.timings = timings;
        this.aloneMayBeAcknowledged = aloneMayBeAcknowledged;
        this.settings = settings;
        this.epoch = epoch;
        this.path = path;
        this.mirrorPool = mirrorPool;
        this.observer = observer;
        this.inFlight = inFlight;
        this.linkLoss = linkLoss;
    }

    @Override
    public void commit(Connection principal, boolean likelyWrites) throws SQLException {
        String gid = new Gid(settings.partnership(), epoch.getAsLong(), settings.coordinatorId(), counter.incrementAndGet()).toString();
        inFlight.add(gid);
        int previousTimeout = principal.getNetworkTimeout();
        // A frozen principal or a black-holed link must not hold the commit forever.
        principal.setNetworkTimeout(Runnable::run, (int) settings.callTimeout().toMillis() + SOCKET_MARGIN_MILLIS);
        long started = System.nanoTime();
        try {
            Path now = path.get();
            if (now == Path.LOCKSTEP) {
                long mirrorNanos = commit(principal, likelyWrites, gid);
                if (mirrorNanos >= 0) {
                    timings.committed(false, System.nanoTime() - started, mirrorNanos);
                }
            } else if (commitAlone(principal, gid, now)) {
                timings.committed(true, System.nanoTime() - started, 0);
            }
        } catch (SQLException e) {
            // Whatever failed before the principal prepared leaves its transaction open: end it,
            // as a failed commit does in plain JDBC.
            rollbackQuietly(principal, e);
            throw e;
        } finally {
            inFlight.remove(gid);
            restoreNetworkTimeout(principal, previousTimeout);
        }
    }

    /** Returns the nanoseconds spent on the mirror, or -1 when nothing mirrored was changed. */
    private long commit(Connection principal, boolean likelyWrites, String gid) throws SQLException {
        long mirrorNanos;
        // The mirror connection is taken before anything is prepared, so that waiting for one
        // never stretches the window in which the transaction is prepared on the principal alone.
        try (Connection mirror = mirrorConnection(likelyWrites)) {
            JournalRecord record = likelyWrites ? collectAndPrepare(principal, gid) : collectThenPrepare(principal, gid);
            if (record == null) {
                return -1;
            }
            observer.stepDone(CommitStep.PRINCIPAL_PREPARED, gid);
            long onMirror = System.nanoTime();
            Connection applying = mirror != null ? mirror : mirrorAfterPrepare(principal, gid);
            try {
                // The mirror commits first: once the principal shows the transaction, a later
                // transaction that builds on it must find it committed on the mirror too.
                commitOnMirror(principal, applying, gid, record);
                observer.stepDone(CommitStep.MIRROR_COMMITTED, gid);
                mirrorNanos = System.nanoTime() - onMirror;
            } finally {
                if (applying != mirror) {
                    applying.close();
                }
            }
        }
        commitOnPrincipal(principal, gid);
        observer.stepDone(CommitStep.PRINCIPAL_COMMITTED, gid);
        return mirrorNanos;
    }

    /**
     * The principal commits alone: exposed, its journal keeps the record until the mirror catches
     * up; or refused, when it has no quorum and the transaction changed something mirrored.
     *
     * @return whether anything mirrored was committed
     */
    private boolean commitAlone(Connection principal, String gid, Path now) throws SQLException {
        JournalRecord record;
        try {
            record = collect(principal, gid, now == Path.EXPOSED ? Boolean.TRUE : null);
        } catch (SQLException e) {
            throw principalRefused(principal, gid, e, false);
        }
        if (record != null && now == Path.HALTED) {
            throw SqlStates.error(SqlStates.NOT_READY, "lockstep: transaction " + gid + " was rolled back: principal node "
                    + settings.principalNode() + " lacks commits that its mirror node " + settings.mirrorNode() + " holds (it came"
                    + " back as an older copy), so it accepts no writes at epoch " + epoch.getAsLong() + "; stop it so that the"
                    + " coordinators fail over to the mirror (the coordinator's log and event say more)", null);
        }
        if (record != null && (now == Path.REFUSED || path.get() != Path.EXPOSED)) {
            // Refused, or the lease ran out while collecting: committing alone now could overlap a
            // promotion of the mirror.
            throw SqlStates.error(SqlStates.FENCED, "lockstep: transaction " + gid + " was rolled back: principal node "
                    + settings.principalNode() + " has no quorum at epoch " + epoch.getAsLong()
                    + " (neither the mirror nor the witness confirms it), so it accepts no writes", null);
        }
        try {
            principal.commit();
        } catch (SQLException e) {
            if (!SqlStates.isConnectionLoss(e)) {
                throw e;
            }
            linkLoss.principalLinkLost();
            throw SqlStates.error(SqlStates.OUTCOME_UNKNOWN, "lockstep: transaction " + gid + " may or may not have committed on"
                    + " principal node " + settings.principalNode() + " (running exposed): the link broke during COMMIT: "
                    + e.getMessage(), e);
        }
        observer.stepDone(CommitStep.PRINCIPAL_COMMITTED, gid);
        if (record != null && !aloneMayBeAcknowledged.getAsBoolean()) {
            throw SqlStates.error(SqlStates.OUTCOME_UNKNOWN, "lockstep: transaction " + gid + " committed on principal node "
                    + settings.principalNode() + " running exposed at epoch " + epoch.getAsLong() + ", but its COMMIT returned"
                    + " only after the principal's lease at the witness ran out, when a forced service of mirror node "
                    + settings.mirrorNode() + " may have begun; it is not acknowledged (should the mirror have been forced"
                    + " into service, the divergence report lists it when this node returns)", null);
        }
        return record != null;
    }

    /** A mirror connection taken after the principal prepared: without one, the principal rolls back. */
    private Connection mirrorAfterPrepare(Connection principal, String gid) throws SQLException {
        try {
            return mirrorPool.getConnection();
        } catch (SQLException e) {
            linkLoss.mirrorLinkLost();
            if (!rollbackPreparedOnPrincipal(principal, gid, e)) {
                // Still prepared: should the mirror be written off, resolution commits it there.
                throw SqlStates.error(SqlStates.OUTCOME_UNKNOWN, "lockstep: transaction " + gid + " found no connection to"
                        + " mirror node " + settings.mirrorNode() + " and its rollback on principal node " + settings.principalNode()
                        + " failed too; it stays prepared there and in-doubt resolution commits or rolls it back: "
                        + e.getMessage(), e);
            }
            throw SqlStates.error(SqlStates.CONNECTION_FAILED, "lockstep: transaction " + gid + " was rolled back: no connection"
                    + " to mirror node " + settings.mirrorNode() + ": " + e.getMessage(), e);
        }
    }

    private Connection mirrorConnection(boolean likelyWrites) throws SQLException {
        if (!likelyWrites) {
            return null;
        }
        try {
            return mirrorPool.getConnection();
        } catch (SQLException e) {
            linkLoss.mirrorLinkLost();
            throw SqlStates.error(e.getSQLState() != null ? e.getSQLState() : SqlStates.CONNECTION_FAILED,
                    "lockstep: no connection to mirror node " + settings.mirrorNode() + "; nothing was committed: "
                            + e.getMessage(), e);
        }
    }

    private static void restoreNetworkTimeout(Connection c, int millis) {
        try {
            if (!c.isClosed()) {
                c.setNetworkTimeout(Runnable::run, millis);
            }
        } catch (SQLException ignored) {
            // The connection is broken; the pool discards it.
        }
    }

    /** One round trip: drain and prepare together, for transactions that look like writers. */
    private JournalRecord collectAndPrepare(Connection principal, String gid) throws SQLException {
        JournalRecord record;
        try (Statement st = principal.createStatement()) {
            st.setQueryTimeout(Nodes.seconds(settings.callTimeout()));
            st.execute("SELECT * FROM lockstep.collect(" + Nodes.quoted(gid) + "); PREPARE TRANSACTION " + Nodes.quoted(gid));
            try (ResultSet rs = st.getResultSet()) {
                record = JournalRecord.read(rs, gid);
            }
        } catch (SQLException e) {
            throw principalRefused(principal, gid, e, true);
        }
        if (record == null) {
            // Nothing mirrored changed: the empty prepared transaction commits on the principal alone.
            Nodes.runOutsideTransaction(principal, "COMMIT PREPARED " + Nodes.quoted(gid), settings.callTimeout());
        }
        return record;
    }

    /** Turns the transaction's change set into its journal record; null when nothing mirrored changed. */
    private JournalRecord collect(Connection principal, String gid, Boolean alone) throws SQLException {
        try (PreparedStatement ps = principal.prepareStatement("SELECT * FROM lockstep.collect(?, ?)")) {
            ps.setQueryTimeout(Nodes.seconds(settings.callTimeout()));
            ps.setString(1, gid);
            ps.setObject(2, alone, java.sql.Types.BOOLEAN);
            try (ResultSet rs = ps.executeQuery()) {
                return JournalRecord.read(rs, gid);
            }
        }
    }

    /** Drain first; a transaction that changed nothing mirrored then commits plainly. */
    private JournalRecord collectThenPrepare(Connection principal, String gid) throws SQLException {
        JournalRecord record;
        try {
            record = collect(principal, gid, false);
            if (record == null) {
                principal.commit();
                return null;
            }
        } catch (SQLException e) {
            throw principalRefused(principal, gid, e, false);
        }
        try (Statement st = principal.createStatement()) {
            st.setQueryTimeout(Nodes.seconds(settings.callTimeout()));
            st.execute("PREPARE TRANSACTION " + Nodes.quoted(gid));
        } catch (SQLException e) {
            throw principalRefused(principal, gid, e, true);
        }
        return record;
    }

    /**
     * @param prepareSent whether PREPARE TRANSACTION had been sent: a link lost after that leaves
     *                    the outcome unknown (it may be prepared, and resolution may commit it)
     */
    private SQLException principalRefused(Connection principal, String gid, SQLException cause, boolean prepareSent) {
        boolean linkLost = SqlStates.isConnectionLoss(cause);
        if (linkLost) {
            linkLoss.principalLinkLost();
        } else if (refusedForMirroringState(cause)) {
            linkLoss.viewMayBeStale();
        }
        rollbackQuietly(principal, cause);
        if (linkLost && prepareSent) {
            return SqlStates.error(SqlStates.OUTCOME_UNKNOWN, "lockstep: transaction " + gid + " may be prepared on principal"
                    + " node " + settings.principalNode() + " at epoch " + epoch.getAsLong() + " (the link broke while preparing);"
                    + " in-doubt resolution commits or rolls it back: " + cause.getMessage(), cause);
        }
        return SqlStates.error(cause.getSQLState(), "lockstep: transaction " + gid + " was rolled back on principal node "
                + settings.principalNode() + " at epoch " + epoch.getAsLong() + ": " + cause.getMessage(), cause);
    }

    /**
     * The principal's own refusal of a commit whose path no longer matches its mirroring state
     * (lockstep.require_mirroring_path), not an application's serialization failure.
     */
    private static boolean refusedForMirroringState(SQLException cause) {
        return SqlStates.SERIALIZATION_FAILURE.equals(cause.getSQLState())
                && cause instanceof org.postgresql.util.PSQLException server && server.getServerErrorMessage() != null
                && String.valueOf(server.getServerErrorMessage().getWhere()).contains("lockstep.require_mirroring_path");
    }

    /** Applies the record and commits it on the mirror in one round trip. */
    private void commitOnMirror(Connection principal, Connection mirror, String gid, JournalRecord record) throws SQLException {
        try (PreparedStatement ps = mirror.prepareStatement(APPLY_AND_COMMIT)) {
            ps.setQueryTimeout(Nodes.seconds(settings.callTimeout()));
            record.bind(ps);
            ps.execute();
        } catch (SQLException e) {
            boolean linkLost = SqlStates.isConnectionLoss(e);
            if (linkLost) {
                linkLoss.mirrorLinkLost();
            }
            rollbackQuietly(mirror, e);
            if (linkLost && !barOnMirror(gid, e)) {
                // The mirror may have committed it, and a promotion of the mirror would serve it:
                // the principal must keep it prepared, and in-doubt resolution settles it.
                throw SqlStates.error(SqlStates.OUTCOME_UNKNOWN, "lockstep: transaction " + gid + " may be committed on mirror node "
                        + settings.mirrorNode() + " (the link broke during apply and commit); it stays prepared on principal node "
                        + settings.principalNode() + " and in-doubt resolution commits or rolls it back to match: " + e.getMessage(), e);
            }
            // The mirror does not hold it and never will (barred, or it reported the failure).
            if (!rollbackPreparedOnPrincipal(principal, gid, e)) {
                // Still prepared on the principal: should the mirror then be written off, in-doubt
                // resolution commits it there, so "rolled back" would be a promise not kept.
                throw SqlStates.error(SqlStates.OUTCOME_UNKNOWN, "lockstep: transaction " + gid + " failed on mirror node "
                        + settings.mirrorNode() + " and its rollback on principal node " + settings.principalNode()
                        + " failed too; it stays prepared there and in-doubt resolution rolls it back, or commits it"
                        + " should the mirror be written off: " + e.getMessage(), e);
            }
            String state = e.getSQLState() != null ? e.getSQLState() : SqlStates.CONNECTION_FAILURE;
            throw SqlStates.error(state, "lockstep: transaction " + gid + " was rolled back: mirror node "
                    + settings.mirrorNode() + " failed to apply or commit it at epoch " + epoch.getAsLong() + ": "
                    + e.getMessage() + (journalPositionTaken(e) ? "; the mirror holds that journal position from another"
                    + " transaction, as when principal node " + settings.principalNode() + " was put back to an older copy (its"
                    + " journal sequence is behind): the coordinator's comparison of the two journals then stops its writes" : ""), e);
        }
    }

    /** The mirror refused the record because it holds another record at the same position. */
    private static boolean journalPositionTaken(SQLException e) {
        return "23505".equals(e.getSQLState()) && e instanceof org.postgresql.util.PSQLException server
                && server.getServerErrorMessage() != null && "journal_pkey".equals(server.getServerErrorMessage().getConstraint());
    }

    /**
     * Bars the gid on the mirror over a fresh connection: afterwards the mirror cannot prepare
     * it. False when the mirror cannot be reached or holds the gid (prepared, or still applying).
     */
    private boolean barOnMirror(String gid, SQLException cause) {
        try (Connection c = mirrorPool.getConnection(); Statement st = c.createStatement()) {
            st.setQueryTimeout(Nodes.seconds(settings.callTimeout()));
            st.execute("SET LOCAL lock_timeout = '" + Math.max(100, settings.callTimeout().toMillis() / 2) + "ms'");
            boolean barred;
            try (ResultSet rs = st.executeQuery("SELECT lockstep.bar(" + Nodes.quoted(gid) + ")")) {
                rs.next();
                barred = rs.getBoolean(1);
            }
            c.commit();
            return barred;
        } catch (SQLException e) {
            cause.addSuppressed(e);
            return false;
        }
    }

    /** Whether the principal's prepared transaction was rolled back. */
    private boolean rollbackPreparedOnPrincipal(Connection principal, String gid, SQLException cause) {
        try {
            Nodes.runOutsideTransaction(principal, "ROLLBACK PREPARED " + Nodes.quoted(gid), settings.callTimeout());
            return true;
        } catch (SQLException e) {
            // Left prepared on the principal: in-doubt resolution settles it.
            cause.addSuppressed(e);
            return false;
        }
    }

    /** The mirror committed it, so the principal commits; a failure here leaves it to in-doubt resolution. */
    private void commitOnPrincipal(Connection principal, String gid) throws SQLException {
        try {
            Nodes.runOutsideTransaction(principal, "COMMIT PREPARED " + Nodes.quoted(gid), settings.callTimeout());
        } catch (SQLException e) {
            if (SqlStates.isConnectionLoss(e)) {
                linkLoss.principalLinkLost();
            } else if (SqlStates.UNDEFINED_OBJECT.equals(e.getSQLState()) && committedMeanwhile(principal, gid, e)) {
                // Another coordinator's in-doubt resolution found it committed on the mirror and
                // committed it here first (this commit was slow: a link held it past the grace).
                return;
            }
            throw SqlStates.error(SqlStates.OUTCOME_UNKNOWN, "lockstep: transaction " + gid
                    + " is committed on mirror node " + settings.mirrorNode() + " but COMMIT PREPARED on principal node " + settings.principalNode()
                    + " failed; in-doubt resolution will commit it: " + e.getMessage(), e);
        }
    }

    /** Whether the principal's journal holds the transaction committed; false when that cannot be read. */
    private boolean committedMeanwhile(Connection principal, String gid, SQLException cause) {
        try (PreparedStatement ps = principal.prepareStatement("SELECT lockstep.committed(?)")) {
            ps.setQueryTimeout(Nodes.seconds(settings.callTimeout()));
            ps.setString(1, gid);
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next() && rs.getBoolean(1);
            }
        } catch (SQLException e) {
            cause.addSuppressed(e);
            return false;
        } finally {
            rollbackQuietly(principal, cause);
        }
    }

    private static void rollbackQuietly(Connection c, SQLException cause) {
        try {
            c.rollback();
        } catch (SQLException e) {
            cause.addSuppressed(e);
        }
    }
}
