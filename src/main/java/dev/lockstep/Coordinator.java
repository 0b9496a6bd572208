package dev.lockstep;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import dev.lockstep.commit.CommitProtocol;
import dev.lockstep.commit.InDoubtResolver;
import dev.lockstep.commit.JournalBacklog;
import dev.lockstep.commit.MirrorGap;
import dev.lockstep.commit.NodeChecks;
import dev.lockstep.commit.NodeSchema;
import dev.lockstep.commit.PrincipalState;
import dev.lockstep.commit.SeedMark;
import dev.lockstep.core.Gid;
import dev.lockstep.core.MirroringState;
import dev.lockstep.core.NodeRole;
import dev.lockstep.core.NodeView;
import dev.lockstep.core.OperatingMode;
import dev.lockstep.core.PartnerHealth;
import dev.lockstep.core.PartnershipCheck;
import dev.lockstep.core.PartnershipRecord;
import dev.lockstep.core.RoleChanges;
import dev.lockstep.events.LockstepEvent;
import dev.lockstep.jdbc.LockstepConnection;
import dev.lockstep.jdbc.SqlStates;
import dev.lockstep.witness.WitnessStore;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;

/**
 * The coordinator inside one application instance: checks and prepares both nodes, owns one
 * connection pool per node, runs the commit protocol and in-doubt resolution and, with a
 * witness, the partnership monitor that fails over. What it acts on (epoch, roles, pools) is a
 * {@link Topology}, replaced as a whole when the epoch changes.
 */
final class Coordinator implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(Coordinator.class);
    /** Hikari's shortest wait; a caller's wait for the principal is made of several. */
    private static final long PRINCIPAL_WAIT_MILLIS = 250;
    /** Connections per node kept for the coordinator's own work, apart from the application's. */
    private static final int CONTROL_POOL_SIZE = 3;

    /** The roles and pools of one epoch. */
    final class Topology implements AutoCloseable {
        final long epoch;
        final NodeConfig principal;
        final NodeConfig mirror;
        final HikariDataSource principalPool;
        /**
         * The coordinator's own principal connections (monitor, in-doubt resolution, measuring;
         * one each): an application that holds every pooled connection must not leave the
         * partnership unable to record a lost mirror or settle a transaction in doubt.
         */
        final HikariDataSource principalControlPool;
        final HikariDataSource mirrorPool;
        final CommitProtocol protocol;
        final InDoubtResolver resolver;
        /** Principal connections the application holds, aborted when the epoch moves on. */
        final Set<Connection> borrowed = ConcurrentHashMap.newKeySet();

        Topology(long epoch, NodeConfig principal, NodeConfig mirror) {
            this.epoch = epoch;
            this.principal = principal;
            this.mirror = mirror;
            // Short waits for a principal connection: getConnection() retries them, following a failover.
            this.principalPool = pool(principal, "", config.poolSize(), PRINCIPAL_WAIT_MILLIS, principalProperties(epoch));
            this.principalControlPool = pool(principal, "-control", CONTROL_POOL_SIZE, PRINCIPAL_WAIT_MILLIS,
                    controlProperties(epoch));
            this.mirrorPool = pool(mirror, "", config.poolSize() + CONTROL_POOL_SIZE, Math.max(250, config.connectTimeout().toMillis()),
                    mirrorProperties());
            this.protocol = new CommitProtocol(new CommitProtocol.Settings(config.partnership(), incarnation,
                    principal.name(), mirror.name(), config.remoteCallTimeout()),
                    () -> epoch, () -> path(epoch), mirrorPool, config.commitObserver(), inFlight, new DropStaleConnections(this),
                    telemetry, () -> aloneMayBeAcknowledged(epoch));
            this.resolver = new InDoubtResolver(config.partnership(),
                    new InDoubtResolver.Node(principal.name(), principalControlPool),
                    new InDoubtResolver.Node(mirror.name(), mirrorPool),
                    inFlight::contains, this::preparedHere, config.inDoubtGrace(), config.remoteCallTimeout(),
                    () -> path(epoch) == CommitProtocol.Path.EXPOSED);
        }

        /** Whether this run of the coordinator prepared the transaction, in this epoch. */
        private boolean preparedHere(String gid) {
            Gid parsed = Gid.parseOrNull(gid);
            return parsed != null && parsed.epoch() == epoch && parsed.coordinator().equals(incarnation)
                    && parsed.partnership().equals(config.partnership());
        }

        /**
         * A principal connection for the application, tracked until it is closed.
         *
         * @throws SQLException when the pool has none within its short wait
         */
        Connection lend() throws SQLException {
            Connection physical = principalPool.getConnection();
            borrowed.add(physical);
            return LockstepConnection.wrap(physical, protocol, () -> borrowed.remove(physical));
        }

        /**
         * Breaks the connections the application still holds: statements blocked on an old
         * principal that froze would otherwise wait with no deadline.
         */
        void abortBorrowed() {
            for (Connection c : borrowed) {
                try {
                    c.abort(Runnable::run);
                } catch (SQLException | RuntimeException e) {
                    LOG.debug("lockstep: aborting a connection of epoch {} failed: {}", epoch, e.toString());
                }
            }
        }

        @Override
        public void close() {
            principalPool.close();
            principalControlPool.close();
            mirrorPool.close();
        }
    }

    private final LockstepConfig config;
    private final String incarnation;
    private final Set<String> inFlight = ConcurrentHashMap.newKeySet();
    private final AtomicReference<Topology> topology = new AtomicReference<>();
    private final ScheduledExecutorService background;
    private final WitnessStore witness;
    private final HikariDataSource witnessPool;
    private volatile PartnershipMonitor monitor;
    /** Catch-up runs long: it gets its own thread, one run at a time. */
    private final java.util.concurrent.ExecutorService catchUpThread;
    private final java.util.concurrent.atomic.AtomicBoolean catchingUp = new java.util.concurrent.atomic.AtomicBoolean();
    private volatile long nextCatchUpNanos = System.nanoTime();
    private volatile CatchUpResult lastCatchUp;
    private final Telemetry telemetry;
    private final JournalRetention retention;
    /** A journal position the mirror is known to hold: where the send queue starts. */
    private volatile JournalBacklog.Position mirrorHolds;

    private Coordinator(LockstepConfig config, HikariDataSource witnessPool, WitnessStore witness) {
        this.config = config;
        this.incarnation = incarnation(config);
        this.witnessPool = witnessPool;
        this.witness = witness;
        this.telemetry = new Telemetry(config);
        this.retention = new JournalRetention(this, witness);
        // Probes of each node, the monitor's tick, the resolver, journal retention and the
        // telemetry's watch: one thread each, so that a frozen node holding one of them never
        // starves the others.
        this.background = Executors.newScheduledThreadPool(witness == null ? 6 : 7,
                daemonThreads("lockstep-" + config.partnership()));
        this.catchUpThread = Executors.newSingleThreadExecutor(daemonThreads("lockstep-" + config.partnership() + "-catch-up"));
    }

    /**
     * Checks both nodes, installs the schemas if configured, agrees on the epoch (with a witness:
     * on the witness's record), resolves in-doubt transactions and starts the pools.
     */
    static Coordinator start(LockstepConfig config) throws SQLException {
        HikariDataSource witnessPool = null;
        WitnessStore witness = null;
        NodeConfig principalNode = config.principal();
        NodeConfig mirrorNode = config.mirror();
        PartnershipRecord record = null;
        boolean partnershipExisted = false;
        if (config.witness() != null) {
            witnessPool = witnessPool(config);
            witness = new WitnessStore(witnessPool, config.remoteCallTimeout(), config.witness().name());
            try {
                if (config.installSchema()) {
                    witness.install();
                } else {
                    witness.requireSchema();
                }
                partnershipExisted = !witness.create(new PartnershipRecord(config.partnership(), 1, principalNode.name(),
                        mirrorNode.name(), MirroringState.SYNCHRONIZED, config.mode()), config.coordinatorId());
                record = witness.read(config.partnership()).record();
            } catch (SQLException e) {
                witnessPool.close();
                throw e;
            }
            principalNode = byName(config, record.principal(), witnessPool);
            mirrorNode = byName(config, record.mirror(), witnessPool);
        }
        Coordinator coordinator = new Coordinator(config, witnessPool, witness);
        try {
            // With the witness's record of an existing partnership, one partner may be away: the
            // monitor then acts as it would had the partner failed after the start.
            boolean oneMayBeAway = partnershipExisted;
            SQLException principalAway = null;
            NodeView principal = null;
            try {
                principal = prepareNode(config, principalNode, NodeRole.PRINCIPAL);
            } catch (SQLException e) {
                if (!oneMayBeAway || !SqlStates.isConnectionLoss(e)) {
                    throw e;
                }
                principalAway = e;
            }
            NodeView mirror;
            try {
                mirror = prepareNode(config, mirrorNode, NodeRole.MIRROR);
            } catch (SQLException e) {
                if (principalAway != null && SqlStates.isConnectionLoss(e)) {
                    SQLException neither = SqlStates.error(SqlStates.CONNECTION_FAILED, "lockstep: partnership "
                            + config.partnership() + " cannot start: neither partner answers: " + principalAway.getMessage()
                            + "; " + e.getMessage(), principalAway);
                    neither.addSuppressed(e);
                    throw neither;
                }
                if (!oneMayBeAway || principalAway != null || !SqlStates.isConnectionLoss(e)) {
                    throw e;
                }
                return coordinator.startWithPartnerAway(record, principalNode, mirrorNode, principal, NodeRole.PRINCIPAL, e);
            }
            if (principalAway != null) {
                return coordinator.startWithPartnerAway(record, principalNode, mirrorNode, mirror, NodeRole.MIRROR, principalAway);
            }
            if (witness == null && PartnershipCheck.mirrorServesWithoutWitness(principal, mirror)) {
                LOG.warn("lockstep: partnership {}: node {} serves as principal at epoch {} (forced service); node {} is its mirror",
                        config.partnership(), mirror.node(), mirror.epoch(), principal.node());
                NodeConfig swappedNode = principalNode;
                principalNode = mirrorNode;
                mirrorNode = swappedNode;
                NodeView swappedView = principal;
                principal = mirror;
                mirror = swappedView;
            }
            if (witness == null && PartnershipCheck.isLeftBehindPrincipal(principal, mirror)) {
                Failover.demoteReturning(config.partnership(), mirrorNode, principalNode, principal.epoch(), config.remoteCallTimeout());
                mirror = prepareNode(config, mirrorNode, NodeRole.MIRROR);
            }
            if (Seeding.enrolBlankMirror(config, principalNode, mirrorNode, principal.epoch(), witness)) {
                mirror = prepareNode(config, mirrorNode, NodeRole.MIRROR);
                record = record == null ? null : witness.read(config.partnership()).record();
            }
            // Only where the monitor would demote it on its return: behind by the record, so that
            // catch-up (with its divergence and trim checks) follows before lockstep resumes.
            if (record != null && PartnershipCheck.mirrorLeftBehind(principal, mirror, record.epoch())
                    && mirror.partnership().equals(config.partnership())
                    && (record.state() == MirroringState.DISCONNECTED || record.state() == MirroringState.SUSPENDED)) {
                int[] settled = Failover.demoteReturningPrincipal(witness, config.partnership(), mirrorNode, principalNode,
                        config.remoteCallTimeout());
                LOG.warn("lockstep: partnership {}: node {} was at epoch {} and became mirror at epoch {} ({} prepared"
                                + " transactions committed, {} rolled back); it needs catch-up", config.partnership(),
                        mirrorNode.name(), mirror.epoch(), record.epoch(), settled[0], settled[1]);
                mirror = prepareNode(config, mirrorNode, NodeRole.MIRROR);
            }
            List<String> problems = record == null ? PartnershipCheck.problems(config.partnership(), principal, mirror)
                    : PartnershipCheck.problems(config.partnership(), principal, mirror, record.epoch());
            if (!problems.isEmpty()) {
                throw SqlStates.error(SqlStates.NOT_READY, "lockstep: partnership " + config.partnership()
                        + " cannot start: " + String.join("; ", problems), null);
            }
            record = coordinator.recordMirrorBehindIfItLacksCommits(record, principalNode, mirrorNode, principal.epoch());
            Topology t = coordinator.new Topology(principal.epoch(), principalNode, mirrorNode);
            coordinator.topology.set(t);
            t.resolver.resolve();
            coordinator.scheduleUpkeep();
            if (record == null) {
                // Without a witness the principal's own record of its mirror stands in for the witness's.
                try (Connection c = connectDirect(config, principalNode)) {
                    c.setAutoCommit(false);
                    record = new PartnershipRecord(config.partnership(), principal.epoch(), principalNode.name(),
                            mirrorNode.name(), PrincipalState.read(c, config.remoteCallTimeout()), config.mode());
                }
            }
            coordinator.startMonitor(record);
            LOG.info("lockstep: coordinator {} of partnership {} started at epoch {}: principal {}, mirror {}{}",
                    config.coordinatorId(), config.partnership(), principal.epoch(), principal.node(), mirror.node(),
                    witness != null ? ", witness " + config.witness().name() : "");
            return coordinator;
        } catch (SQLException | RuntimeException e) {
            coordinator.close();
            throw e;
        }
    }

    /**
     * Starts with one partner unreachable, on the witness's record of the partnership: the
     * partner that answered must hold the role and epoch the record gives it. The monitor then
     * treats the absent partner as failed: a principal away is failed over from once the partner
     * timeout has passed and quorum allows, a mirror away leaves the principal committing exposed
     * until catch-up. A blank node does not serve alone. In-doubt
     * transactions are left to the periodic resolver.
     */
    private Coordinator startWithPartnerAway(PartnershipRecord record, NodeConfig principalNode, NodeConfig mirrorNode,
                                             NodeView present, NodeRole presentRole, SQLException away) throws SQLException {
        List<String> problems = PartnershipCheck.problemsWithPartnerAway(config.partnership(), present, presentRole, record.epoch());
        NodeConfig presentNode = presentRole == NodeRole.PRINCIPAL ? principalNode : mirrorNode;
        NodeConfig absentNode = presentRole == NodeRole.PRINCIPAL ? mirrorNode : principalNode;
        if (problems.isEmpty() && isBlank(presentNode)) {
            // New, or wiped and installed afresh: a mirror would be promoted empty in place of the
            // principal's data, a principal would serve an empty database in place of the mirror's.
            throw SqlStates.error(away.getSQLState(), "lockstep: partnership " + config.partnership() + " cannot start without "
                    + absentNode.name() + ": " + presentRole.sqlName() + " " + presentNode.name() + " is blank, so it does not"
                    + " serve alone (it would hide what " + absentNode.name() + " holds): " + away.getMessage(), away);
        }
        if (!problems.isEmpty()) {
            SQLException refused = SqlStates.error(SqlStates.NOT_READY, "lockstep: partnership " + config.partnership()
                    + " cannot start: " + String.join("; ", problems), null);
            refused.addSuppressed(away);
            throw refused;
        }
        LOG.warn("lockstep: coordinator {} of partnership {} starts at epoch {} without {} {}, which cannot be reached ({});"
                        + " the partnership goes on as if it had failed just now", config.coordinatorId(), config.partnership(),
                record.epoch(), presentRole == NodeRole.PRINCIPAL ? "mirror" : "principal", absentNode.name(), away.getMessage());
        topology.set(new Topology(record.epoch(), principalNode, mirrorNode));
        scheduleUpkeep();
        startMonitor(record);
        return this;
    }

    /**
     * A mirror recorded SYNCHRONIZED that lacks a transaction the principal committed (restored
     * from an older backup while no coordinator ran) is recorded behind, at the witness or else on
     * the principal, so that catch-up replays what it lacks before lockstep resumes; otherwise
     * commits would go on over the gap and a failover would serve it. A principal that lacks what
     * its mirror committed is refused (55000).
     *
     * @return the witness's record as it stands now; null without a witness
     */
    private PartnershipRecord recordMirrorBehindIfItLacksCommits(PartnershipRecord record, NodeConfig principalNode,
                                                                 NodeConfig mirrorNode, long epoch) throws SQLException {
        // Asynchronous: its mirror may lag behind while SYNCHRONIZED; the shipper sends what it lacks.
        if (config.mode() == OperatingMode.HIGH_PERFORMANCE || record != null && record.state() != MirroringState.SYNCHRONIZED) {
            return record;
        }
        // Retention trimming during a comparison leaves it inconclusive: compared again.
        for (int attempt = 1; ; attempt++) {
            try {
                return compareJournalsAtStart(record, principalNode, mirrorNode, epoch);
            } catch (SQLException e) {
                if (!SqlStates.SERIALIZATION_FAILURE.equals(e.getSQLState()) || attempt == 3) {
                    throw e;
                }
            }
        }
    }

    private PartnershipRecord compareJournalsAtStart(PartnershipRecord record, NodeConfig principalNode, NodeConfig mirrorNode,
                                                     long epoch) throws SQLException {
        try (Partners partners = openPartners(principalNode, mirrorNode)) {
            Connection p = partners.principal();
            Connection m = partners.mirror();
            PrincipalState.Seen seen = partners.seen();
            if (seen.state() != MirroringState.SYNCHRONIZED) {
                return record;
            }
            Optional<String> lost = principalLacksMirrorCommits(p, m, epoch);
            if (lost.isPresent()) {
                p.rollback();
                // Lockstep on top of it would build on a history that lacks acknowledged commits.
                throw SqlStates.error(SqlStates.NOT_READY, "lockstep: partnership " + config.partnership() + " cannot start:"
                        + " principal " + principalNode.name() + " lacks " + lost.get() + " that its SYNCHRONIZED mirror "
                        + mirrorNode.name() + " committed at epoch " + epoch + ", so it lost committed transactions (restored"
                        + " from an older backup?); the mirror holds them. " + (witness != null
                        ? "Make " + mirrorNode.name() + " the principal: stop " + principalNode.name() + " and start again; the"
                        + " coordinator then fails over to " + mirrorNode.name() + ", and " + principalNode.name()
                        + " rejoins as its mirror when it returns"
                        : "Without a witness no start can fail over to it, since a start needs both partners (README,"
                        + " Known limits)"), null);
            }
            return recordBehindIfItLacksCommits(p, m, seen, record, principalNode, mirrorNode, epoch).record();
        } catch (SQLException e) {
            if (!SqlStates.isConnectionLoss(e) && !SqlStates.LOCK_NOT_AVAILABLE.equals(e.getSQLState())) {
                throw e;
            }
            // A partner lost since its check moments ago (the monitor finds it failed), or a
            // cut-over holding the node state (one that ends SYNCHRONIZED has replayed everything).
            LOG.warn("lockstep: partnership {}: could not compare the mirror's journal with the principal's at start: {}",
                    config.partnership(), e.getMessage());
            return record;
        }
    }

    /** Connections to both partners for comparing their journals, and the principal's mirroring state as read first. */
    private record Partners(Connection principal, Connection mirror, PrincipalState.Seen seen) implements AutoCloseable {
        @Override
        public void close() throws SQLException {
            try (Connection m = mirror) {
                principal.close();
            }
        }
    }

    private Partners openPartners(NodeConfig principalNode, NodeConfig mirrorNode) throws SQLException {
        Connection p = connectDirect(config, principalNode, startProperties());
        Connection m = null;
        try {
            m = connectDirect(config, mirrorNode, startProperties());
            p.setAutoCommit(false);
            // Each query its own snapshot, whatever the database's default isolation: the checks
            // rely on seeing commits that finished before each query.
            p.setTransactionIsolation(Connection.TRANSACTION_READ_COMMITTED);
            m.setAutoCommit(true);
            return new Partners(p, m, PrincipalState.readSeen(p, config.remoteCallTimeout()));
        } catch (SQLException | RuntimeException e) {
            try (Connection mirror = m) {
                p.close();
            } catch (SQLException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
    }

    /**
     * At run time, on the catch-up thread (so that neither the monitor nor a catch-up waits for
     * the other): the monitor saw the mirror's server restart, or its database replaced, while the
     * partnership is SYNCHRONIZED. Compared with the principal's journal as a start compares it.
     *
     * @param record      the witness's record the monitor acts on; null without a witness
     * @param t           the topology
     * @param incarnation the mirror's server start and database, as its probe read them
     * @param done        told whether the comparison ran to its end (false: try again)
     */
    void checkRestartedMirrorSoon(PartnershipRecord record, Topology t, String incarnation, Consumer<Boolean> done) {
        onCatchUpThread(() -> checkRestartedMirror(record, t, incarnation), done);
    }

    /** Runs a check on the catch-up thread; {@code done} hears whether it ran to its end, whatever happens. */
    private void onCatchUpThread(java.util.function.BooleanSupplier check, Consumer<Boolean> done) {
        try {
            catchUpThread.execute(() -> {
                boolean conclusive = false;
                try {
                    conclusive = check.getAsBoolean();
                } catch (RuntimeException e) {
                    LOG.warn("lockstep: partnership {}: a journal comparison failed: {}", config.partnership(), e.toString());
                } finally {
                    done.accept(conclusive);
                }
            });
        } catch (RejectedExecutionException closing) {
            done.accept(false);
        }
    }

    private boolean checkRestartedMirror(PartnershipRecord record, Topology t, String incarnation) {
        try (Partners partners = openPartners(t.principal, t.mirror)) {
            if (partners.seen().state() != MirroringState.SYNCHRONIZED) {
                return true;
            }
            GapCheck gap = recordBehindIfItLacksCommits(partners.principal(), partners.mirror(), partners.seen(), record, t.principal,
                    t.mirror, t.epoch);
            if (gap.finding() != null) {
                LOG.info("lockstep: partnership {}: mirror {} came back as another incarnation ({}): {}", config.partnership(),
                        t.mirror.name(), incarnation, gap.finding());
                telemetry.mirrorRestarted(t.mirror.name(), incarnation, gap.finding());
            }
            return true;
        } catch (SQLException e) {
            LOG.warn("lockstep: partnership {}: could not compare the journal of mirror {}, which came back as another"
                    + " incarnation, with the principal's: {}", config.partnership(), t.mirror.name(), e.getMessage());
            return false;
        }
    }

    /**
     * Compares a SYNCHRONIZED mirror's journal with the principal's. One that lacks the
     * principal's newest record (or, once retention emptied the principal's journal, the last it
     * trimmed) stopped short: it is recorded behind, and catch-up replays what it lacks. One that
     * holds it yet lacks an older record (the last trimmed, or any of the epoch) has commits on
     * top of a gap, which replaying the gap after them would not mend (a later update of a row
     * would be undone): it is marked for seeding, then recorded behind. Recorded at the witness,
     * then on the principal, each a compare-and-set that the monitor takes over should another
     * coordinator move it meanwhile.
     *
     * @param p    a connection to the principal, autocommit off
     * @param seen the principal's mirroring state, SYNCHRONIZED, as read before the comparison
     * @return the witness's record as it stands now (null without a witness), and what was found
     *         (null when the mirroring state changed meanwhile, so that nothing was compared)
     * @throws SQLException 40001 when retention trimmed a node during the comparison
     */
    private GapCheck recordBehindIfItLacksCommits(Connection p, Connection m, PrincipalState.Seen seen,
                                                  PartnershipRecord record, NodeConfig principalNode,
                                                  NodeConfig mirrorNode, long epoch) throws SQLException {
        // Each query its own transaction: no lock on the principal is held while the mirror answers.
        p.setAutoCommit(true);
        Optional<String> missing = MirrorGap.newestRecordMissingOnMirror(p, m, config.remoteCallTimeout());
        boolean gapBelow = false;
        if (missing.isEmpty()) {
            missing = MirrorGap.lastTrimmedMissingOnMirror(p, m, config.remoteCallTimeout());
            if (missing.isEmpty()) {
                missing = MirrorGap.recordsMissingOnMirror(p, m, epoch, config.remoteCallTimeout());
            }
            gapBelow = missing.isPresent();
        }
        p.setAutoCommit(false);
        // A change of the mirroring state meanwhile (an exposed commit, a whole catch-up) may
        // explain the gap: the monitor then acts on the state as it is.
        if (PrincipalState.readSeen(p, config.remoteCallTimeout()).change() != seen.change()) {
            return new GapCheck(record, null);
        }
        if (missing.isEmpty()) {
            return new GapCheck(record, LockstepEvent.MirrorFinding.HOLDS_EVERY_RECORD);
        }
        String why = "mirror " + mirrorNode.name() + " lacks " + missing.get() + " that principal " + principalNode.name()
                + " committed: " + (gapBelow ? "re-seeding it, as it holds later commits on top of the gap" : "catching it up");
        LOG.warn("lockstep: partnership {}: {}", config.partnership(), why);
        if (gapBelow) {
            p.setAutoCommit(true);
            Seeding.mark(config, witness, p, epoch, mirrorNode.name(), why);
            p.setAutoCommit(false);
        }
        LockstepEvent.MirrorFinding finding = gapBelow ? LockstepEvent.MirrorFinding.GAP_RESEEDING
                : LockstepEvent.MirrorFinding.BEHIND_CATCHING_UP;
        // Witness first, then the principal (which then refuses lockstep commits at once), as
        // the monitor records a lost mirror.
        if (record != null && !witness.transition(record, RoleChanges.mirrorLost(record).next(), null, why,
                config.coordinatorId())) {
            return new GapCheck(witness.read(config.partnership()).record(), finding);
        }
        PrincipalState.recordIf(p, epoch, MirroringState.DISCONNECTED, seen, config.remoteCallTimeout());
        return new GapCheck(record == null ? null : witness.read(config.partnership()).record(), finding);
    }

    private record GapCheck(PartnershipRecord record, LockstepEvent.MirrorFinding finding) {
    }

    /**
     * A record of the epoch that the SYNCHRONIZED mirror committed and the principal lacks: the
     * mirror's newest, or any (a principal put back while coordinators run has commits on top of
     * its gap). Asked twice: a real loss persists, whereas a commit of another coordinator caught
     * between two steps does not.
     *
     * @param p a connection to the principal, autocommit off (left so)
     */
    private Optional<String> principalLacksMirrorCommits(Connection p, Connection m, long epoch) throws SQLException {
        Optional<String> lost = principalLacksMirrorCommitsOnce(p, m, epoch);
        return lost.isEmpty() ? lost : principalLacksMirrorCommitsOnce(p, m, epoch);
    }

    private Optional<String> principalLacksMirrorCommitsOnce(Connection p, Connection m, long epoch) throws SQLException {
        Optional<String> lost = MirrorGap.newestMirrorRecordMissingOnPrincipal(p, m, epoch, config.remoteCallTimeout());
        p.rollback();
        if (lost.isEmpty()) {
            p.setAutoCommit(true);
            try {
                lost = MirrorGap.recordsMissingOnPrincipal(p, m, epoch, config.remoteCallTimeout());
            } finally {
                p.setAutoCommit(false);
            }
        }
        return lost;
    }

    /**
     * At run time, on the catch-up thread: the monitor saw the principal come back as another
     * incarnation while SYNCHRONIZED. A principal that lacks what its mirror committed (put back to
     * an older copy) lost acknowledged commits, which the mirror holds: this coordinator stops
     * writes on it for the epoch (as a start refuses it), and says how to fail over.
     *
     * @param t           the topology
     * @param incarnation the principal's server start and database, as its probe read them
     * @param found       told, after a comparison ran to its end, what the principal lacks
     *                    (empty: nothing, so that writes may go on)
     * @param done        told whether the comparison ran to its end (false: try again)
     */
    void checkRestartedPrincipalSoon(Topology t, String incarnation, Consumer<Optional<String>> found, Consumer<Boolean> done) {
        onCatchUpThread(() -> checkRestartedPrincipal(t, incarnation, found), done);
    }

    private boolean checkRestartedPrincipal(Topology t, String incarnation, Consumer<Optional<String>> found) {
        try (Partners partners = openPartners(t.principal, t.mirror)) {
            if (partners.seen().state() != MirroringState.SYNCHRONIZED) {
                return true;
            }
            Optional<String> lost = principalLacksMirrorCommits(partners.principal(), partners.mirror(), t.epoch);
            if (lost.isPresent()) {
                String why = "principal " + t.principal.name() + " came back as another incarnation (" + incarnation + ") that lacks "
                        + lost.get() + " that its SYNCHRONIZED mirror " + t.mirror.name() + " committed at epoch " + t.epoch
                        + ", so it lost acknowledged commits (put back to an older copy?); the mirror holds them. It takes no more"
                        + " writes at this epoch: " + (witness != null ? "stop " + t.principal.name() + ", and the coordinators fail"
                        + " over to " + t.mirror.name() + "; it rejoins as mirror when it returns"
                        : "without a witness, make " + t.mirror.name() + " the principal by hand (README, Known limits)");
                LOG.error("lockstep: partnership {}: {}", config.partnership(), why);
                telemetry.principalLostCommits(t.principal.name(), t.epoch, why);
            }
            found.accept(lost);
            LOG.info("lockstep: partnership {}: principal {} came back as another incarnation ({}); {}", config.partnership(),
                    t.principal.name(), incarnation, lost.isPresent() ? "it lost commits" : "it holds every record its mirror holds");
            return true;
        } catch (SQLException e) {
            LOG.warn("lockstep: partnership {}: could not compare the journal of principal {}, which came back as another"
                    + " incarnation, with the mirror's: {}", config.partnership(), t.principal.name(), e.getMessage());
            return false;
        }
    }

    private boolean isBlank(NodeConfig node) throws SQLException {
        try (Connection c = connectDirect(config, node, startProperties())) {
            return SeedMark.blank(c);
        }
    }

    /** The in-doubt resolver and journal retention, each on its own schedule. */
    private void scheduleUpkeep() {
        long interval = config.resolverInterval().toMillis();
        background.scheduleWithFixedDelay(this::resolveQuietly, interval, interval, TimeUnit.MILLISECONDS);
        long retention = config.journalCheckInterval().toMillis();
        background.scheduleWithFixedDelay(this.retention::runQuietly, retention, retention, TimeUnit.MILLISECONDS);
    }

    private void startMonitor(PartnershipRecord record) {
        monitor = PartnershipMonitor.start(this, witness, record, background);
        long heartbeat = config.heartbeatInterval().toMillis();
        background.scheduleWithFixedDelay(this::watch, heartbeat, heartbeat, TimeUnit.MILLISECONDS);
    }

    private static NodeConfig byName(LockstepConfig config, String name, HikariDataSource witnessPool) throws SQLException {
        if (config.principal().name().equals(name)) {
            return config.principal();
        }
        if (config.mirror().name().equals(name)) {
            return config.mirror();
        }
        witnessPool.close();
        throw SqlStates.error(SqlStates.NOT_READY, "lockstep: the witness names node " + name + " as a partner of "
                + config.partnership() + ", but the configuration has " + config.principal().name() + " and "
                + config.mirror().name(), null);
    }

    /**
     * Moves to the record's epoch and roles: new connections go to its principal; the previous
     * pools close at once, failing what still runs on them with a connection error (08xxx) or,
     * for a commit under way, 40003.
     */
    void adopt(PartnershipRecord record) {
        RoleChangeUnderWay mine = roleChangeUnderWay;
        if (mine != null) {
            // This coordinator's own planned or forced change, seen at the witness before its call returned.
            adopt(record, mine.kind(), Duration.ofNanos(System.nanoTime() - mine.startedNanos()));
        } else {
            adopt(record, LockstepEvent.FailoverKind.FOLLOWED, Duration.ZERO);
        }
    }

    /** A planned or forced role change this coordinator has asked the witness for. */
    private record RoleChangeUnderWay(LockstepEvent.FailoverKind kind, long startedNanos) {
    }

    private volatile RoleChangeUnderWay roleChangeUnderWay;

    private <T> T changingRoles(LockstepEvent.FailoverKind kind, RoleChange<T> change) throws SQLException {
        roleChangeUnderWay = new RoleChangeUnderWay(kind, System.nanoTime());
        try {
            return change.run();
        } finally {
            roleChangeUnderWay = null;
        }
    }

    @FunctionalInterface
    private interface RoleChange<T> {
        T run() throws SQLException;
    }

    /**
     * As {@link #adopt(PartnershipRecord)}, for a role change of the given kind that took
     * {@code took}, as listeners and metrics are told.
     */
    void adopt(PartnershipRecord record, LockstepEvent.FailoverKind kind, Duration took) {
        Topology current = topology.get();
        if (record.epoch() <= current.epoch) {
            return;
        }
        NodeConfig principal = config.principal().name().equals(record.principal()) ? config.principal() : config.mirror();
        NodeConfig mirror = principal == config.principal() ? config.mirror() : config.principal();
        Topology next = new Topology(record.epoch(), principal, mirror);
        if (!topology.compareAndSet(current, next)) {
            next.close();
            return;
        }
        LOG.warn("lockstep: partnership {} moved to epoch {}: principal {}, mirror {} ({})", config.partnership(),
                record.epoch(), principal.name(), mirror.name(), record.state());
        // Work still on the old pools is fenced by both nodes already; closing them at once
        // aborts statements stuck on a frozen old principal, whose sessions would otherwise hang
        // with no deadline, and frees their threads for the new principal.
        current.abortBorrowed();
        background.execute(current::close);
        telemetry.failover(kind, current.epoch, record.epoch(), principal.name(), mirror.name(), took);
    }

    /**
     * A connection to the principal of the current epoch, waiting at most the connect timeout.
     * The wait is cut into short ones so that a failover meanwhile sends the caller to the new
     * principal at once instead of letting it wait out the timeout on the old one.
     *
     * @return the application's connection
     * @throws SQLException 08001 naming the node and epoch when none came in time
     */
    Connection principalConnection() throws SQLException {
        long deadline = System.nanoTime() + config.connectTimeout().toNanos();
        while (true) {
            Topology t = topology.get();
            try {
                return t.lend();
            } catch (SQLException e) {
                boolean moved = topology.get() != t;
                if (!moved && (System.nanoTime() - deadline >= 0 || t.principalPool.isClosed())) {
                    throw SqlStates.error(SqlStates.CONNECTION_FAILED, "lockstep: no connection to principal node "
                            + t.principal.name() + " of partnership " + config.partnership() + " at epoch " + t.epoch
                            + " within " + config.connectTimeout().toMillis() + " ms: " + e.getMessage(), e);
                }
            }
        }
    }

    /**
     * Where a commit of the given epoch goes. Only the current epoch may commit alone: a commit
     * still running on an older topology must go through its mirror, whose fence refuses it.
     */
    private boolean aloneMayBeAcknowledged(long epoch) {
        PartnershipMonitor m = monitor;
        return m != null && m.aloneMayBeAcknowledged(epoch);
    }

    private CommitProtocol.Path path(long epoch) {
        PartnershipMonitor m = monitor;
        return m == null ? CommitProtocol.Path.LOCKSTEP : m.path(epoch);
    }

    private static NodeView prepareNode(LockstepConfig config, NodeConfig node, NodeRole role) throws SQLException {
        try (Connection c = connectDirect(config, node, startProperties(config))) {
            c.setAutoCommit(false);
            NodeChecks.requirePreparedTransactions(c, node.name(), config.poolSize());
            NodeChecks.requireReplicationRole(c, node.name());
            if (config.installSchema()) {
                NodeSchema.install(c, config.partnership(), node.name(), role);
            }
            return NodeSchema.readView(c, node.name());
        }
    }

    /**
     * A connection for catch-up: every statement has a server-side deadline; to the mirror, with
     * the session settings the appliers need.
     */
    Connection connectForCatchUp(NodeConfig node, boolean toMirror) throws SQLException {
        Properties extra = toMirror ? mirrorProperties() : new Properties();
        String deadline = "-c statement_timeout=" + config.remoteCallTimeout().toMillis() * 4;
        extra.setProperty("options", (extra.getProperty("options", "") + " " + deadline).trim());
        extra.setProperty("socketTimeout", Long.toString(config.remoteCallTimeout().toSeconds() * 4 + 5));
        return connectDirect(config, node, extra);
    }

    /**
     * A connection for verify and repair: every statement has the given deadline and lock wait
     * (server side) and the socket a margin beyond it; output settings are pinned as capture pins
     * them; to the mirror, capture and user triggers are off so that repair writes only rows.
     */
    Connection connectForVerify(NodeConfig node, boolean toMirror, java.time.Duration statementTimeout,
                                java.time.Duration lockTimeout) throws SQLException {
        Properties extra = new Properties();
        extra.setProperty("options", "-c statement_timeout=" + statementTimeout.toMillis() + " -c lock_timeout=" + lockTimeout.toMillis()
                + " -c extra_float_digits=3 -c DateStyle=ISO,YMD -c IntervalStyle=postgres -c bytea_output=hex"
                + (toMirror ? " -c session_replication_role=replica -c lockstep.applier=on" : ""));
        extra.setProperty("socketTimeout", Long.toString((statementTimeout.toMillis() + 999) / 1000 + 5));
        return connectDirect(config, node, extra);
    }

    static Connection connectDirect(LockstepConfig config, NodeConfig node) throws SQLException {
        return connectDirect(config, node, new Properties());
    }

    private static Connection connectDirect(LockstepConfig config, NodeConfig node, Properties extra) throws SQLException {
        Properties p = baseProperties(node, config);
        p.putAll(extra);
        try {
            return DriverManager.getConnection(node.jdbcUrl(), p);
        } catch (SQLException e) {
            String state = e.getSQLState() != null && !e.getSQLState().startsWith("08") ? e.getSQLState() : SqlStates.CONNECTION_FAILED;
            throw SqlStates.error(state, "lockstep: cannot connect to node " + node.name() + " at " + node.jdbcUrl()
                    + " as " + node.user() + ": " + e.getMessage(), e);
        }
    }

    /**
     * For the start's checks and schema install: a frozen node (its kernel accepts the connection,
     * the server never answers) fails the login or the call instead of holding the start.
     */
    private static Properties startProperties(LockstepConfig config) {
        Properties p = new Properties();
        p.setProperty("loginTimeout", Long.toString(Math.max(1, config.connectTimeout().toSeconds())));
        p.setProperty("socketTimeout", Long.toString(config.remoteCallTimeout().toSeconds() * 4 + 5));
        return p;
    }

    private Properties startProperties() {
        return startProperties(config);
    }

    private static Properties baseProperties(NodeConfig node, LockstepConfig config) {
        Properties p = new Properties();
        p.setProperty("user", node.user());
        p.setProperty("password", node.password());
        p.setProperty("connectTimeout", Long.toString(Math.max(1, config.connectTimeout().toSeconds())));
        p.setProperty("ApplicationName", "lockstep-" + config.coordinatorId());
        return p;
    }

    private Properties principalProperties(long epoch) {
        Properties p = new Properties();
        // Set at connection start, without a round trip: the capture triggers and collect()
        // compare it with the node's epoch (fencing, invariant I4).
        p.setProperty("options", "-c lockstep.epoch=" + epoch);
        return p;
    }

    /** The coordinator's own principal connections: every call it makes on them has a deadline. */
    private Properties controlProperties(long epoch) {
        Properties p = principalProperties(epoch);
        p.setProperty("socketTimeout", Long.toString(config.remoteCallTimeout().toSeconds() + 5));
        return p;
    }

    private Properties mirrorProperties() {
        Properties p = new Properties();
        p.setProperty("socketTimeout", Long.toString(config.remoteCallTimeout().toSeconds() + 5));
        // Set at connection start, without a round trip: user triggers and capture do not fire
        // while applying, and the guard against writes in replica mode lets this session's pass; row images parse as capture wrote them; appliers look rows up by key;
        // the mirror's commit, which decides a mirrored transaction, is flushed before it returns
        // whatever the server's default.
        p.setProperty("options", "-c session_replication_role=replica -c lockstep.applier=on -c extra_float_digits=3 -c DateStyle=ISO,YMD"
                + " -c IntervalStyle=postgres -c bytea_output=hex -c enable_seqscan=off -c enable_hashjoin=off"
                + " -c enable_mergejoin=off -c synchronous_commit=on");
        return p;
    }

    private HikariDataSource pool(NodeConfig node, String purpose, int size, long waitMillis, Properties extra) {
        HikariConfig h = new HikariConfig();
        h.setPoolName("lockstep-" + config.partnership() + "-" + node.name() + purpose);
        h.setJdbcUrl(node.jdbcUrl());
        h.setUsername(node.user());
        h.setPassword(node.password());
        h.setAutoCommit(false);
        h.setMaximumPoolSize(size);
        h.setMinimumIdle(Math.min(2, size));
        h.setConnectionTimeout(waitMillis);
        // Validating an idle connection to a frozen node waits this long, whoever asked for it.
        h.setValidationTimeout(Math.max(250, Math.min(waitMillis, Math.min(config.connectTimeout().toMillis(), 5000))));
        h.setInitializationFailTimeout(-1);
        h.setExceptionOverrideClassName(KeepConnectionOnStatementError.class.getName());
        Properties p = baseProperties(node, config);
        p.remove("user");
        p.remove("password");
        p.putAll(extra);
        h.setDataSourceProperties(p);
        return new HikariDataSource(h);
    }

    private static HikariDataSource witnessPool(LockstepConfig config) {
        NodeConfig w = config.witness();
        HikariConfig h = new HikariConfig();
        h.setPoolName("lockstep-" + config.partnership() + "-witness-" + w.name());
        h.setJdbcUrl(w.jdbcUrl());
        h.setUsername(w.user());
        h.setPassword(w.password());
        h.setMaximumPoolSize(3);
        h.setMinimumIdle(1);
        h.setConnectionTimeout(Math.max(250, config.connectTimeout().toMillis()));
        h.setValidationTimeout(Math.max(250, Math.min(config.connectTimeout().toMillis(), 5000)));
        h.setInitializationFailTimeout(-1);
        h.addDataSourceProperty("connectTimeout", Long.toString(Math.max(1, config.connectTimeout().toSeconds())));
        h.addDataSourceProperty("socketTimeout", Long.toString(config.remoteCallTimeout().toSeconds() + 5));
        h.addDataSourceProperty("ApplicationName", "lockstep-" + config.coordinatorId());
        return new HikariDataSource(h);
    }

    /**
     * The coordinator id plus a part drawn at each start, so that a restarted coordinator, or two
     * started from one properties file, never reuse a global transaction id.
     */
    private static String incarnation(LockstepConfig config) {
        return config.coordinatorId() + "-" + Integer.toHexString(0x100000 + new java.security.SecureRandom().nextInt(0xf00000));
    }

    /**
     * After one broken link to a node, the pool's other idle connections to it are replaced and
     * the node is probed at once rather than at its next heartbeat.
     */
    private final class DropStaleConnections implements CommitProtocol.LinkLoss {
        private final Topology topology;

        DropStaleConnections(Topology topology) {
            this.topology = topology;
        }

        @Override
        public void principalLinkLost() {
            topology.principalPool.getHikariPoolMXBean().softEvictConnections();
            topology.principalControlPool.getHikariPoolMXBean().softEvictConnections();
            probeSoon(topology.principal.name());
        }

        @Override
        public void mirrorLinkLost() {
            topology.mirrorPool.getHikariPoolMXBean().softEvictConnections();
            probeSoon(topology.mirror.name());
        }

        @Override
        public void viewMayBeStale() {
            PartnershipMonitor m = monitor;
            if (m != null) {
                m.lookAgainNow();
            }
        }
    }

    private void probeSoon(String node) {
        PartnershipMonitor m = monitor;
        if (m != null) {
            m.probeSoon(node);
        }
    }

    /**
     * Starts catching the mirror up in the background unless a run is under way or one failed
     * less than a few heartbeats ago. The monitor calls it while the mirror is reachable and behind.
     */
    void catchUpSoon(PartnershipRecord current) {
        onMirrorThread("catch-up of", t -> {
            telemetry.catchUpStarted();
            CatchUpResult r;
            try {
                r = new CatchUp(this, witness, this::caughtUp).run(t, current);
            } catch (SQLException | RuntimeException e) {
                telemetry.catchUpFailed(t.mirror.name(), e);
                throw e;
            }
            if (r == null) {
                telemetry.catchUpNotNeeded();
            } else {
                lastCatchUp = r;
                telemetry.catchUpFinished(r);
                LOG.warn("lockstep: partnership {}: mirror {} caught up at epoch {}: {} journal records replayed in {}"
                        + " passes; new commits were held {} ms at the cut-over", config.partnership(), t.mirror.name(),
                        t.epoch, r.replayed(), r.passes(), String.format(java.util.Locale.ROOT, "%.1f", r.cutOverMillis()));
            }
        });
    }

    /**
     * HIGH_PERFORMANCE: starts shipping the journal to the mirror in the background unless it is
     * under way or failed less than a few heartbeats ago. The monitor calls it while the mirror is
     * reachable.
     */
    void shipSoon() {
        onMirrorThread("shipping to", t -> new Shipper(this).run(t));
    }

    /** Work on the mirror that runs long: one run at a time, on its own thread, backing off after a failure. */
    private void onMirrorThread(String what, MirrorWork work) {
        if (System.nanoTime() - nextCatchUpNanos < 0 || !catchingUp.compareAndSet(false, true)) {
            return;
        }
        Topology t = topology.get();
        try {
            catchUpThread.execute(() -> {
                try {
                    work.run(t);
                } catch (SQLException | RuntimeException e) {
                    nextCatchUpNanos = System.nanoTime() + config.heartbeatInterval().toNanos() * 5;
                    LOG.warn("lockstep: partnership {}: {} mirror {} failed; retrying later: {}", config.partnership(), what,
                            t.mirror.name(), e.getMessage());
                    LOG.debug("lockstep: " + what + " mirror failed", e);
                } finally {
                    catchingUp.set(false);
                }
            });
        } catch (java.util.concurrent.RejectedExecutionException e) {
            catchingUp.set(false);
        }
    }

    @FunctionalInterface
    private interface MirrorWork {
        void run(Topology t) throws SQLException;
    }

    /** Whether a catch-up or the shipper runs now. */
    boolean shipping() {
        return catchingUp.get();
    }

    /** Whether the journal should be shipped now: HIGH_PERFORMANCE, and the mirror is neither suspended nor lost. */
    boolean shippingWanted() {
        PartnershipMonitor m = monitor;
        return m != null && config.mode() == dev.lockstep.core.OperatingMode.HIGH_PERFORMANCE
                && m.record().state() == MirroringState.SYNCHRONIZING;
    }

    private void caughtUp(PartnershipRecord record) {
        PartnershipMonitor m = monitor;
        if (m != null) {
            m.caughtUp(record);
        }
    }

    /** The last catch-up this coordinator completed, or null. */
    CatchUpResult lastCatchUp() {
        return lastCatchUp;
    }

    private void resolveQuietly() {
        try {
            InDoubtResolver.Result r = topology.get().resolver.resolve();
            telemetry.inDoubtResolved(r);
            if (r.committed() + r.rolledBack() > 0) {
                LOG.info("lockstep: in-doubt resolution committed {} and rolled back {} transactions", r.committed(), r.rolledBack());
            }
        } catch (RuntimeException e) {
            LOG.warn("lockstep: in-doubt resolution failed: {}", e.toString());
        }
    }

    private static ThreadFactory daemonThreads(String prefix) {
        AtomicInteger n = new AtomicInteger();
        return r -> {
            Thread t = new Thread(r, prefix + "-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
    }

    /** This coordinator's view of the partnership. */
    PartnershipStatus status() {
        Topology t = topology.get();
        PartnershipMonitor m = monitor;
        if (m == null) {
            return new PartnershipStatus(config.partnership(), t.epoch, t.principal.name(), t.mirror.name(),
                    MirroringState.SYNCHRONIZED, config.mode(), null, null, null, null, false);
        }
        PartnershipRecord r = m.record();
        PartnerHealth principal = m.health(t.principal.name());
        PartnerHealth mirror = m.health(t.mirror.name());
        PartnerHealth witnessHealth = witness != null ? m.health(config.witness().name()) : null;
        boolean armed = dev.lockstep.core.QuorumRules.automaticFailoverAllowed(new dev.lockstep.core.QuorumRules.Observation(
                r, principal, mirror, witnessHealth, 0, config.partnerTimeout().toMillis()));
        // A principal found lacking its mirror's commits takes no writes, whatever the quorum says.
        return new PartnershipStatus(config.partnership(), t.epoch, t.principal.name(), t.mirror.name(), r.state(), r.mode(),
                principal, mirror, witnessHealth, m.halted(t.epoch) ? dev.lockstep.core.QuorumRules.Action.STOP_WRITES : m.lastAction(),
                armed && !m.mirrorCheckDue());
    }

    /** Planned failover to the named node; this coordinator follows at once. */
    PartnershipRecord plannedFailover(String newPrincipal) throws SQLException {
        return changingRoles(LockstepEvent.FailoverKind.PLANNED, () -> plannedFailoverNow(newPrincipal));
    }

    private PartnershipRecord plannedFailoverNow(String newPrincipal) throws SQLException {
        if (witness == null) {
            throw SqlStates.error(SqlStates.NOT_SUPPORTED, "lockstep: planned failover of partnership " + config.partnership()
                    + " needs a witness (set witness.url); without one, roles are changed by reconfiguring the nodes", null);
        }
        Topology t = topology.get();
        PartnershipMonitor m = monitor;
        String unsafe = m == null ? null : m.plannedFailoverRefusal(t);
        if (unsafe != null) {
            throw SqlStates.error(SqlStates.NOT_READY, "lockstep: planned failover of partnership " + config.partnership()
                    + " at epoch " + t.epoch + " refused: " + unsafe, null);
        }
        long started = System.nanoTime();
        PartnershipRecord next = Failover.planned(witness, config.partnership(), newPrincipal, t.principal, t.mirror,
                config.remoteCallTimeout(), config.coordinatorId());
        adopt(next, LockstepEvent.FailoverKind.PLANNED, Duration.ofNanos(System.nanoTime() - started));
        return next;
    }

    /**
     * Suspends mirroring (SQL Server's SET PARTNER SUSPEND): recorded at the witness (if any),
     * then on the principal, which from then on commits alone and keeps its journal; no catch-up
     * runs until {@link #resume()}. Recorded on the witness and the node, it survives restarts.
     */
    PartnershipRecord suspend() throws SQLException {
        PartnershipRecord current = current();
        return changeMirroring(current, RoleChanges.suspend(current), "mirroring suspended");
    }

    /** Resumes mirroring: the partnership goes SYNCHRONIZING and the mirror catches up by itself. */
    PartnershipRecord resume() throws SQLException {
        PartnershipRecord current = current();
        return changeMirroring(current, RoleChanges.resume(current), "mirroring resumed");
    }

    private PartnershipRecord current() throws SQLException {
        Topology t = topology.get();
        if (witness != null) {
            return witness.read(config.partnership()).record();
        }
        try (Connection c = connectDirect(config, t.principal)) {
            c.setAutoCommit(false);
            return new PartnershipRecord(config.partnership(), t.epoch, t.principal.name(), t.mirror.name(),
                    PrincipalState.read(c, config.remoteCallTimeout()), config.mode());
        }
    }

    private PartnershipRecord changeMirroring(PartnershipRecord current, RoleChanges.Result change, String why)
            throws SQLException {
        if (!change.allowed()) {
            throw SqlStates.error(SqlStates.NOT_READY, "lockstep: partnership " + config.partnership() + ": "
                    + change.refusal(), null);
        }
        Topology t = topology.get();
        PartnershipRecord next = change.next();
        if (next.epoch() != t.epoch) {
            throw SqlStates.error(SqlStates.SERIALIZATION_FAILURE, "lockstep: partnership " + config.partnership()
                    + " is at epoch " + next.epoch() + " but this coordinator at " + t.epoch + "; retry", null);
        }
        if (witness != null && !witness.transition(current, next, null, why, config.coordinatorId())) {
            throw SqlStates.error(SqlStates.SERIALIZATION_FAILURE, "lockstep: partnership " + config.partnership()
                    + " changed at the witness meanwhile; retry", null);
        }
        try (Connection c = connectDirect(config, t.principal)) {
            c.setAutoCommit(false);
            PrincipalState.Seen seen = PrincipalState.readSeen(c, config.remoteCallTimeout());
            // Without a witness the principal's record is the only one: a change decided on a
            // reading another change has overtaken is refused.
            boolean expected = witness != null || seen.state() == current.state();
            // With a witness, a catch-up that starts on the witness's new record writes it here
            // first: writing it again would change the state under that catch-up.
            boolean alreadyRecorded = witness != null && seen.state() == next.state();
            if (!alreadyRecorded
                    && (!expected || !PrincipalState.recordIf(c, t.epoch, next.state(), seen, config.remoteCallTimeout()))) {
                // With a witness, the monitor follows the witness's new record onto the principal
                // too, and may have recorded the same change between the reading and the write.
                MirroringState now = PrincipalState.readSeen(c, config.remoteCallTimeout()).state();
                if (!expected || now != next.state()) {
                    throw SqlStates.error(SqlStates.SERIALIZATION_FAILURE, "lockstep: partnership " + config.partnership()
                            + ": principal " + t.principal.name() + " changed its mirroring state meanwhile (now "
                            + now + "); retry", null);
                }
            }
        }
        LOG.warn("lockstep: partnership {}: {}: now {}", config.partnership(), why, next.state());
        return next;
    }

    /**
     * An operator's re-seed (SQL Server: re-initialising the mirror from a backup): mirroring is
     * suspended if it runs, the mirror is marked for seeding on the principal (and at the witness),
     * then mirroring resumes; the catch-up (or, in HIGH_PERFORMANCE, the shipper) seeds the mirror
     * from a snapshot of the principal and replays what followed, while writers go on.
     */
    PartnershipRecord reseedMirror() throws SQLException {
        PartnershipRecord current = current();
        if (current.state() != MirroringState.SUSPENDED && current.state() != MirroringState.DISCONNECTED) {
            current = suspend();
        }
        Topology t = topology.get();
        try (Connection c = connectDirect(config, t.principal)) {
            c.setAutoCommit(true);
            dev.lockstep.commit.SeedMark.mark(c, t.epoch, true);
        }
        if (witness != null) {
            witness.markMirrorForSeeding(config.partnership(), t.epoch, "operator asked to re-seed mirror " + t.mirror.name(),
                    config.coordinatorId());
        }
        LOG.warn("lockstep: partnership {}: mirror {} marked for seeding at an operator's request", config.partnership(),
                t.mirror.name());
        return resume();
    }

    /** Forced service onto the mirror; this coordinator follows at once. */
    PartnershipRecord forceService(boolean allowDataLoss) throws SQLException {
        return changingRoles(LockstepEvent.FailoverKind.FORCED, () -> forceServiceNow(allowDataLoss));
    }

    private PartnershipRecord forceServiceNow(boolean allowDataLoss) throws SQLException {
        PartnershipMonitor m = monitor;
        Topology t = topology.get();
        long started = System.nanoTime();
        if (witness == null) {
            PartnershipRecord next = Failover.forceServiceWithoutWitness(m.record(), t.mirror, allowDataLoss,
                    m.health(t.principal.name()), config.remoteCallTimeout());
            adopt(next, LockstepEvent.FailoverKind.FORCED, Duration.ofNanos(System.nanoTime() - started));
            m.followWithoutWitness(next);
            return next;
        }
        PartnershipRecord next = Failover.forceService(witness, config.partnership(), t.mirror, allowDataLoss,
                m.health(t.principal.name()), config.partnerTimeout(), config.remoteCallTimeout(), config.coordinatorId());
        adopt(next, LockstepEvent.FailoverKind.FORCED, Duration.ofNanos(System.nanoTime() - started));
        return next;
    }

    LockstepConfig config() { return config; }
    Topology topology() { return topology.get(); }
    long epoch() { return topology.get().epoch; }
    HikariDataSource principalPool() { return topology.get().principalPool; }
    HikariDataSource mirrorPool() { return topology.get().mirrorPool; }
    InDoubtResolver resolver() { return topology.get().resolver; }
    String incarnation() { return incarnation; }
    Telemetry telemetry() { return telemetry; }
    JournalRetention retention() { return retention; }

    /**
     * Once a heartbeat: tells the telemetry the mirroring state and the send queue (the
     * principal's journal records beyond what the mirror is known to hold).
     */
    private void watch() {
        try {
            Topology t = topology.get();
            PartnershipMonitor m = monitor;
            PartnershipRecord r = m == null ? null : m.record();
            MirroringState state = r == null ? MirroringState.SYNCHRONIZED : r.state();
            telemetry.observe(r == null ? t.epoch : r.epoch(), state, sendQueue(t, state, m));
        } catch (RuntimeException e) {
            LOG.debug("lockstep: partnership {}: measuring the send queue failed: {}", config.partnership(), e.toString());
        }
    }

    private JournalBacklog.Backlog sendQueue(Topology t, MirroringState state, PartnershipMonitor m) {
        Duration deadline = config.heartbeatInterval().compareTo(config.remoteCallTimeout()) < 0
                ? config.heartbeatInterval() : config.remoteCallTimeout();
        try {
            if (state == MirroringState.SYNCHRONIZED && config.mode() != dev.lockstep.core.OperatingMode.HIGH_PERFORMANCE) {
                // In lockstep the mirror holds whatever the principal holds.
                try (Connection c = measuring(t.principalControlPool, deadline)) {
                    mirrorHolds = JournalBacklog.last(c, deadline);
                }
                return JournalBacklog.Backlog.NONE;
            }
            if (m != null && m.health(t.mirror.name()) == PartnerHealth.UP) {
                try (Connection c = measuring(t.mirrorPool, deadline)) {
                    mirrorHolds = JournalBacklog.last(c, deadline);
                }
            }
            JournalBacklog.Position holds = mirrorHolds;
            if (holds == null) {
                // Not known until the mirror was seen (or the partnership synchronized) once.
                return null;
            }
            try (Connection c = measuring(t.principalControlPool, deadline)) {
                return JournalBacklog.beyond(c, holds, deadline);
            }
        } catch (SQLException e) {
            return null;
        }
    }

    private static Connection measuring(HikariDataSource pool, Duration deadline) throws SQLException {
        Connection c = pool.getConnection();
        try {
            c.setNetworkTimeout(Runnable::run, (int) Math.max(100, deadline.toMillis()) + 1000);
            return c;
        } catch (SQLException e) {
            c.close();
            throw e;
        }
    }

    @Override
    public void close() {
        PartnershipMonitor m = monitor;
        if (m != null) {
            m.close();
        }
        background.shutdownNow();
        catchUpThread.shutdownNow();
        telemetry.close();
        try {
            // Let a resolution pass that is under way finish before its pools close.
            background.awaitTermination(config.remoteCallTimeout().toMillis() * 2, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        Topology t = topology.get();
        if (t != null) {
            t.close();
        }
        if (witnessPool != null) {
            witnessPool.close();
        }
    }
}
