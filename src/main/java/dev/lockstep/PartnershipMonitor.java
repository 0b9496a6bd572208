package dev.lockstep;

import dev.lockstep.commit.CommitProtocol;
import dev.lockstep.commit.PrincipalState;
import dev.lockstep.core.ExposedLease;
import dev.lockstep.core.MirroringState;
import dev.lockstep.core.OperatingMode;
import dev.lockstep.core.PartnerHealth;
import dev.lockstep.core.PartnershipRecord;
import dev.lockstep.core.QuorumRules;
import dev.lockstep.core.RoleChanges;
import dev.lockstep.events.LockstepEvent;
import dev.lockstep.health.FailureDetector;
import dev.lockstep.health.NodeProbe;
import dev.lockstep.health.ProbeResult;
import dev.lockstep.witness.WitnessStore;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.sql.Connection;
import java.sql.SQLException;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A coordinator's watch over its partnership: once per heartbeat it tells the witness that it
 * reached the principal (renewing its lease), follows the witness's record to new epochs, asks
 * the quorum rules what to do and does it: promote the mirror, record a lost mirror, or stop
 * writes. Commits ask it which path to take.
 */
final class PartnershipMonitor implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(PartnershipMonitor.class);

    private final Coordinator coordinator;
    private final LockstepConfig config;
    private final WitnessStore witness;
    private final FailureDetector detector;
    private final ScheduledExecutorService scheduler;
    private final AtomicBoolean lookAgainQueued = new AtomicBoolean();
    private volatile PartnershipRecord record;
    private volatile CommitProtocol.Path path = CommitProtocol.Path.LOCKSTEP;
    private volatile long leaseSentNanos = Long.MIN_VALUE / 2;
    private volatile long leaseEpoch;
    private volatile long pathEpoch;
    private volatile QuorumRules.Action lastAction;
    /** When this coordinator first saw the witness and the principal disagree, in nanoTime; null when they agree. */
    private Long disagreeingSince;
    /** Guards record, path and pathEpoch against a tick deciding on a record that changed meanwhile. */
    private final Object pathLock = new Object();
    private long localChangeNanos = System.nanoTime();
    private ScheduledFuture<?> ticks;
    private final RestartWatch mirrorRestarts = new RestartWatch();
    private final RestartWatch principalRestarts = new RestartWatch();
    /** The epoch in which the principal was found lacking its mirror's commits: no writes in it. */
    private volatile long haltedEpoch = -1;

    private PartnershipMonitor(Coordinator coordinator, WitnessStore witness, PartnershipRecord record, FailureDetector detector,
                               ScheduledExecutorService scheduler) {
        this.coordinator = coordinator;
        this.scheduler = scheduler;
        this.config = coordinator.config();
        this.witness = witness;
        this.record = record;
        this.detector = detector;
    }

    static PartnershipMonitor start(Coordinator coordinator, WitnessStore witness, PartnershipRecord record,
                                    ScheduledExecutorService scheduler) {
        LockstepConfig config = coordinator.config();
        List<NodeProbe> probes = new java.util.ArrayList<>(List.of(probe(config, config.principal()), probe(config, config.mirror())));
        if (witness != null) {
            probes.add(probe(config, config.witness()));
        }
        FailureDetector detector = new FailureDetector(probes, config.heartbeatInterval(), config.partnerTimeout(),
                System::nanoTime, scheduler, (node, before, after) -> {
                    LOG.info("lockstep: partnership {}: node {} is {} (was {})", config.partnership(), node, after, before);
                    coordinator.telemetry().healthChanged(node, before, after);
                });
        PartnershipMonitor monitor = new PartnershipMonitor(coordinator, witness, record, detector, scheduler);
        if (witness == null) {
            monitor.followRecordWithoutWitness(record.epoch());
        }
        detector.start();
        long interval = config.heartbeatInterval().toMillis();
        monitor.ticks = scheduler.scheduleWithFixedDelay(monitor::tickQuietly, interval, interval, TimeUnit.MILLISECONDS);
        return monitor;
    }

    private static NodeProbe probe(LockstepConfig config, NodeConfig node) {
        return new NodeProbe(node.name(), () -> Failover.connect(node, config.remoteCallTimeout()), config.remoteCallTimeout());
    }

    /**
     * Where a commit of the given epoch goes now. The monitor's decision holds for the epoch it
     * was made in only; an exposed principal commits alone only under a fresh lease of that epoch.
     */
    CommitProtocol.Path path(long epoch) {
        CommitProtocol.Path p = path;
        if (epoch == haltedEpoch) {
            return CommitProtocol.Path.HALTED;
        }
        if (epoch != pathEpoch) {
            return CommitProtocol.Path.LOCKSTEP;
        }
        if (p == CommitProtocol.Path.EXPOSED && witness != null && (leaseEpoch != epoch
                || !ExposedLease.holds(leaseSentNanos, System.nanoTime(), config.partnerTimeout().toMillis()))) {
            return CommitProtocol.Path.REFUSED;
        }
        return p;
    }

    /**
     * Stops writes in the epoch on a principal found lacking its mirror's commits, or lets them go
     * on again once a later incarnation of it (put right in place) holds them all.
     */
    private void halt(long epoch, boolean lacking) {
        if (lacking) {
            haltedEpoch = epoch;
        } else if (haltedEpoch == epoch) {
            LOG.warn("lockstep: partnership {}: the principal holds every commit its mirror holds again; writes go on at epoch {}",
                    config.partnership(), epoch);
            haltedEpoch = -1;
        }
    }

    /**
     * Why a planned failover would be unsafe now, or null: the mirror came back as another
     * incarnation whose journal is not compared yet (it may be an older copy), or the principal
     * lacks commits its mirror holds (it would become a SYNCHRONIZED mirror that lacks them).
     */
    String plannedFailoverRefusal(Coordinator.Topology t) {
        if (halted(t.epoch)) {
            return "principal " + t.principal.name() + " lacks commits its mirror holds; stop it instead, and the coordinators fail"
                    + " over to " + t.mirror.name();
        }
        if (mirrorCheckDue()) {
            return "mirror " + t.mirror.name() + " came back as another incarnation and its journal is not compared with the"
                    + " principal's yet; retry in a few heartbeats";
        }
        return null;
    }

    /**
     * Whether a commit this coordinator made alone at the given epoch may still be acknowledged:
     * the monitor's decision is of that epoch and, with a witness, the exposed lease still holds.
     * Asked right after the principal's COMMIT returned, since a COMMIT can stall for longer than
     * the lease, and once the lease has run out a forced service of the mirror may have begun.
     */
    boolean aloneMayBeAcknowledged(long epoch) {
        if (epoch != pathEpoch) {
            return false;
        }
        return witness == null || (leaseEpoch == epoch
                && ExposedLease.holds(leaseSentNanos, System.nanoTime(), config.partnerTimeout().toMillis()));
    }

    /** The witness's record as last read. */
    PartnershipRecord record() {
        return record;
    }

    /** What the quorum rules said last. */
    QuorumRules.Action lastAction() {
        return lastAction;
    }

    /** Whether this coordinator takes no writes at the epoch because the principal lacks its mirror's commits. */
    boolean halted(long epoch) {
        return haltedEpoch == epoch;
    }

    /** Whether the mirror came back as another incarnation that is not compared yet (no automatic failover to it). */
    boolean mirrorCheckDue() {
        return mirrorRestarts.checkDue();
    }

    /** A node's health as the failure detector sees it. */
    PartnerHealth health(String node) {
        return detector.health(node);
    }

    /** Has the failure detector probe the node now (a commit saw its link break). */
    void probeSoon(String node) {
        detector.probeSoon(node);
        scheduler.schedule(this::tickQuietly, config.remoteCallTimeout().toMillis() / 4 + 50, TimeUnit.MILLISECONDS);
    }

    /**
     * Runs a pass now, unless one is already queued: a commit was refused because this
     * coordinator's view of the partnership is stale. Refusals come in bursts (every commit in
     * flight gets one), which need a single pass.
     */
    void lookAgainNow() {
        if (lookAgainQueued.compareAndSet(false, true)) {
            try {
                scheduler.execute(this::lookAgain);
            } catch (RejectedExecutionException closing) {
                lookAgainQueued.set(false);
            }
        }
    }

    /**
     * The flag clears only once this pass holds the monitor: while a pass is slow (a black-holed
     * witness), further refusals queue nothing, so they cannot tie up the shared threads.
     */
    private synchronized void lookAgain() {
        lookAgainQueued.set(false);
        tickQuietly();
    }

    private void tickQuietly() {
        try {
            tick();
        } catch (SQLException | RuntimeException e) {
            LOG.warn("lockstep: partnership {}: monitor pass failed: {}", config.partnership(), e.toString());
        }
    }

    private synchronized void tick() throws SQLException {
        Coordinator.Topology t = coordinator.topology();
        PartnerHealth principal = detector.health(t.principal.name());
        PartnerHealth mirror = detector.health(t.mirror.name());
        if (witness == null) {
            tickWithoutWitness(t, principal, mirror);
            return;
        }
        WitnessStore.Sighting seen = null;
        long sent = System.nanoTime();
        try {
            // "Reached" means answered within the last two heartbeats, not merely "not yet timed out":
            // the witness's count towards a promotion starts from the last true sighting.
            boolean reached = principal == PartnerHealth.UP
                    && detector.silentMillis(t.principal.name()) < 2 * config.heartbeatInterval().toMillis();
            WitnessStore.Beat beat = witness.beat(config.partnership(), config.coordinatorId(), t.epoch, reached);
            if (beat.leaseGranted()) {
                leaseSentNanos = sent;
                leaseEpoch = t.epoch;
            }
            seen = beat.sighting();
        } catch (SQLException e) {
            LOG.debug("lockstep: partnership {}: witness unreachable: {}", config.partnership(), e.getMessage());
        }
        if (seen != null) {
            synchronized (pathLock) {
                if (sent - localChangeNanos < 0) {
                    // This coordinator changed the record itself (a cut-over) after the beat was sent.
                    return;
                }
                record = seen.record();
            }
            if (record.epoch() > t.epoch) {
                coordinator.adopt(record);
                path = CommitProtocol.Path.LOCKSTEP;
                return;
            }
        }
        if (seen != null && record.state() == MirroringState.PENDING_FAILOVER && abandoned(seen)) {
            PartnershipRecord next = Failover.completePending(witness, seen, t.principal, t.mirror,
                    config.remoteCallTimeout(), config.coordinatorId());
            LOG.warn("lockstep: partnership {}: completed a role change left pending: now {}", config.partnership(), next);
            record = next;
            coordinator.adopt(next);
            return;
        }
        PartnerHealth witnessHealth = seen != null ? detector.health(config.witness().name()) : PartnerHealth.FAILED;
        // Without a fresh reading the principal counts as seen: no promotion on stale information.
        long unseen = seen != null ? seen.principalUnseenMillis() : 0;
        ProbeResult lastProbe = detector.lastProbe(t.principal.name());
        long quiet = QuorumRules.quietMillis(principal == PartnerHealth.FAILED && lastProbe != null && lastProbe.hardFailure(),
                config.heartbeatInterval().toMillis(), config.partnerTimeout().toMillis());
        PartnershipRecord basis = record;
        QuorumRules.Action action = QuorumRules.decide(new QuorumRules.Observation(basis, principal, mirror, witnessHealth,
                unseen, quiet));
        if (action == QuorumRules.Action.CUT_OFF_FROM_PRINCIPAL && quiet - unseen < config.heartbeatInterval().toMillis()) {
            // Act when the quiet period ends rather than up to a heartbeat later.
            scheduler.schedule(this::tickQuietly, Math.max(10, quiet - unseen + 10), TimeUnit.MILLISECONDS);
        }
        if (action != lastAction) {
            LOG.info("lockstep: partnership {} at epoch {}: {}", config.partnership(), record.epoch(), action);
        }
        lastAction = action;
        checkRestartedMirror(t, basis, action);
        checkRestartedPrincipal(t, basis, action);
        act(action, t, mirror, quiet, principalState(t, principal), basis);
    }

    /**
     * A mirror that came back as another incarnation (its server restarted, or its database was
     * replaced) while SYNCHRONIZED may be an older copy, put back faster than the partner timeout:
     * its journal is compared with the principal's, every record of the epoch, so that commits
     * that reached it since do not hide a gap below them. The comparison runs off the monitor's
     * thread; until it has run, the mirror is not promoted automatically.
     */
    private void checkRestartedMirror(Coordinator.Topology t, PartnershipRecord basis, QuorumRules.Action action) {
        // Not SYNCHRONIZED: recorded behind already, so catch-up replays what it lacks (a gap below
        // records it holds is not found then: README, Known limits).
        String incarnation = mirrorRestarts.due(t.mirror.name(), detector.incarnation(t.mirror.name()),
                basis.state() == MirroringState.SYNCHRONIZED, action == QuorumRules.Action.LOCKSTEP);
        if (incarnation != null) {
            coordinator.checkRestartedMirrorSoon(witness == null ? null : basis, t, incarnation,
                    conclusive -> mirrorRestarts.checkEnded(incarnation, conclusive));
        }
    }

    /**
     * A principal that came back as another incarnation while SYNCHRONIZED may be an older copy
     * that lost acknowledged commits, which its mirror holds: compared off the monitor's thread,
     * and if so, no more writes on it in this epoch (a start refuses it likewise). A failover to
     * the mirror, which stopping the principal brings about, ends the epoch.
     */
    private void checkRestartedPrincipal(Coordinator.Topology t, PartnershipRecord basis, QuorumRules.Action action) {
        // Not SYNCHRONIZED: the mirror is behind and cannot show what the principal lacks.
        String incarnation = principalRestarts.due(t.principal.name(), detector.incarnation(t.principal.name()),
                basis.state() == MirroringState.SYNCHRONIZED, action == QuorumRules.Action.LOCKSTEP);
        if (incarnation != null) {
            long epoch = t.epoch;
            coordinator.checkRestartedPrincipalSoon(t, incarnation, lost -> halt(epoch, lost.isPresent()),
                    conclusive -> principalRestarts.checkEnded(incarnation, conclusive));
        }
    }

    /**
     * Carries out the decision taken on {@code basis}. Transitions are compare-and-sets on it, and
     * the path changes only while the record is still {@code basis}: a catch-up that finished
     * meanwhile is not undone by a decision taken before it.
     */
    private void act(QuorumRules.Action action, Coordinator.Topology t, PartnerHealth mirror, long quiet,
                     PrincipalState.Seen principalState, PartnershipRecord basis) throws SQLException {
        switch (action) {
            case FAILOVER -> {
                if (mirrorRestarts.checkDue()) {
                    // It came back as another incarnation, perhaps an older copy: not known to be
                    // SYNCHRONIZED until its journal is compared with the principal's (I5).
                    LOG.warn("lockstep: partnership {}: principal {} lost, but mirror {} restarted since its journal was last"
                            + " compared; no automatic failover (forced service remains)", config.partnership(), t.principal.name(),
                            t.mirror.name());
                    return;
                }
                follow(basis, CommitProtocol.Path.REFUSED, t.epoch);
                long sent = System.nanoTime();
                PartnershipRecord next = Failover.promoteMirror(witness, config.partnership(), t.mirror, PartnerHealth.FAILED,
                        Duration.ofMillis(quiet), config.remoteCallTimeout(), config.coordinatorId());
                // The witness counted the new principal as seen when it recorded the promotion: that
                // is this coordinator's lease, so the new principal serves at once, exposed.
                leaseSentNanos = sent;
                leaseEpoch = next.epoch();
                synchronized (pathLock) {
                    record = next;
                    path = next.state() == MirroringState.SYNCHRONIZED ? CommitProtocol.Path.LOCKSTEP : CommitProtocol.Path.EXPOSED;
                    pathEpoch = next.epoch();
                }
                coordinator.adopt(next, LockstepEvent.FailoverKind.AUTOMATIC,
                        Duration.ofMillis(detector.silentMillis(t.principal.name())));
            }
            case RUN_EXPOSED -> {
                if (basis.state() == MirroringState.SYNCHRONIZED
                        || (basis.state() == MirroringState.SYNCHRONIZING && mirror != PartnerHealth.UP)) {
                    // Recorded first, so that no coordinator promotes a mirror that misses what follows.
                    RoleChanges.Result lost = RoleChanges.mirrorLost(basis);
                    if (witness.transition(basis, lost.next(), null, "mirror " + t.mirror.name() + " lost", config.coordinatorId())) {
                        replace(basis, lost.next());
                        // On at once rather than a heartbeat later: commits meanwhile would still
                        // be sent to a mirror known to be lost. Only once the principal records
                        // it too, as it refuses commits alone until then.
                        if (principalState != null && (principalState.state() != MirroringState.SYNCHRONIZED
                                || recordBehindOnPrincipal(t, principalState))) {
                            follow(lost.next(), CommitProtocol.Path.EXPOSED, t.epoch);
                        }
                        return;
                    }
                    follow(basis, CommitProtocol.Path.LOCKSTEP, t.epoch);
                    return;
                }
                if (principalState != null && principalState.state() == MirroringState.SYNCHRONIZED) {
                    // The principal commits alone only once it records its mirror as behind.
                    recordBehindOnPrincipal(t, principalState);
                }
                follow(basis, CommitProtocol.Path.EXPOSED, t.epoch);
                bringMirrorBack(t, mirror, basis);
            }
            case STOP_WRITES -> follow(basis, CommitProtocol.Path.REFUSED, t.epoch);
            case LOCKSTEP -> {
                follow(basis, CommitProtocol.Path.LOCKSTEP, t.epoch);
                repairIfPrincipalDisagrees(t, principalState, basis);
            }
            default -> {
                // Waiting out a silent partner, or the principal is unreachable: the path stays as
                // it was (an exposed principal keeps committing alone under its lease).
            }
        }
    }

    /** Sets the path, unless the record moved on since the decision. */
    private void follow(PartnershipRecord basis, CommitProtocol.Path next, long epoch) {
        synchronized (pathLock) {
            if (record == basis) {
                path = next;
                pathEpoch = epoch;
            }
        }
    }

    private void replace(PartnershipRecord basis, PartnershipRecord next) {
        synchronized (pathLock) {
            if (record == basis) {
                record = next;
            }
        }
    }

    /** A reachable mirror that is behind: a returning old principal is demoted, then it catches up. */
    private void bringMirrorBack(Coordinator.Topology t, PartnerHealth mirror, PartnershipRecord basis) {
        if (mirror != PartnerHealth.UP) {
            return;
        }
        if (basis.state() == MirroringState.DISCONNECTED || basis.state() == MirroringState.SUSPENDED) {
            demoteIfReturned(t);
        }
        if (basis.state() == MirroringState.DISCONNECTED || basis.state() == MirroringState.SYNCHRONIZING) {
            coordinator.catchUpSoon(basis);
        }
    }

    /**
     * The witness says SYNCHRONIZED but the principal records its mirror as behind: a cut-over
     * died between its two records. Seen for a heartbeat or longer (a live cut-over records the
     * witness first and the principal moments later, and passes can run back to back), the
     * witness is set back to DISCONNECTED and catch-up runs again.
     */
    private void repairIfPrincipalDisagrees(Coordinator.Topology t, PrincipalState.Seen principalState, PartnershipRecord basis)
            throws SQLException {
        if (principalState == null || principalState.state() == MirroringState.SYNCHRONIZED
                || basis.state() != MirroringState.SYNCHRONIZED) {
            disagreeingSince = null;
            return;
        }
        long now = System.nanoTime();
        if (disagreeingSince == null) {
            disagreeingSince = now;
            return;
        }
        if (now - disagreeingSince < config.heartbeatInterval().toNanos()) {
            return;
        }
        RoleChanges.Result lost = RoleChanges.mirrorLost(basis);
        if (witness.transition(basis, lost.next(), null, "principal " + t.principal.name() + " records its mirror "
                + principalState.state(), config.coordinatorId())) {
            replace(basis, lost.next());
        }
        disagreeingSince = null;
    }

    /** This coordinator's catch-up finished: it commits in lockstep from now on. */
    void caughtUp(PartnershipRecord next) {
        if (next.epoch() != coordinator.topology().epoch) {
            return;
        }
        synchronized (pathLock) {
            record = next;
            path = CommitProtocol.Path.LOCKSTEP;
            pathEpoch = next.epoch();
            localChangeNanos = System.nanoTime();
        }
    }

    /**
     * A pooled principal connection whose every read must answer within a heartbeat: the monitor
     * reads the principal each heartbeat, and a frozen principal must not hold the heartbeat.
     */
    private Connection principalConnection(Coordinator.Topology t) throws SQLException {
        Connection c = t.principalControlPool.getConnection();
        try {
            c.setNetworkTimeout(Runnable::run, (int) Math.max(100, Math.min(config.heartbeatInterval().toMillis(),
                    config.remoteCallTimeout().toMillis())));
            return c;
        } catch (SQLException e) {
            c.close();
            throw e;
        }
    }

    /** The mirroring state the principal records, or null when it cannot be read now. */
    private PrincipalState.Seen principalState(Coordinator.Topology t, PartnerHealth principal) {
        if (principal != PartnerHealth.UP || detector.silentMillis(t.principal.name()) >= 2 * config.heartbeatInterval().toMillis()) {
            return null;
        }
        try (Connection c = principalConnection(t)) {
            return PrincipalState.readSeen(c, config.remoteCallTimeout());
        } catch (SQLException e) {
            return null;
        }
    }

    /**
     * The principal still records its mirror SYNCHRONIZED while the witness says it is not. The
     * witness is read again after the principal: a cut-over records SYNCHRONIZED at the witness
     * before the principal, so a fresh witness reading that says otherwise is not stale, and the
     * principal's record changes only if nothing changed it since it was read.
     *
     * @return whether the principal now records its mirror behind, as this call wrote it
     */
    private boolean recordBehindOnPrincipal(Coordinator.Topology t, PrincipalState.Seen seen) {
        try {
            PartnershipRecord now = witness.read(config.partnership()).record();
            if (now.epoch() != t.epoch || now.state() == MirroringState.SYNCHRONIZED
                    || now.state() == MirroringState.PENDING_FAILOVER) {
                return false;
            }
            try (Connection c = principalConnection(t)) {
                return PrincipalState.recordIf(c, t.epoch, now.state(), seen, config.remoteCallTimeout());
            }
        } catch (SQLException e) {
            LOG.warn("lockstep: partnership {}: recording the mirror behind on principal {} failed: {}", config.partnership(),
                    t.principal.name(), e.getMessage());
            return false;
        }
    }

    /**
     * Without a witness (HIGH_SAFETY): the principal's own record says whether its mirror is
     * behind. A lost mirror is recorded there first, then the principal commits alone; nothing
     * fails over by itself.
     */
    private void tickWithoutWitness(Coordinator.Topology t, PartnerHealth principal, PartnerHealth mirror) throws SQLException {
        long started = System.nanoTime();
        PrincipalState.Seen seen = null;
        if (principal == PartnerHealth.UP) {
            try (Connection c = principalConnection(t)) {
                seen = PrincipalState.readSeen(c, config.remoteCallTimeout());
                synchronized (pathLock) {
                    if (started - localChangeNanos < 0) {
                        return;
                    }
                    record = new PartnershipRecord(config.partnership(), t.epoch, t.principal.name(), t.mirror.name(),
                            seen.state(), config.mode());
                }
            }
        }
        QuorumRules.Action action = QuorumRules.decide(new QuorumRules.Observation(record, principal, mirror,
                PartnerHealth.FAILED, 0, config.partnerTimeout().toMillis()));
        if (action != lastAction) {
            LOG.info("lockstep: partnership {} at epoch {} (no witness): {}", config.partnership(), t.epoch, action);
        }
        lastAction = action;
        if (config.mode() == OperatingMode.HIGH_PERFORMANCE) {
            tickHighPerformance(t, mirror, seen, action, started);
            return;
        }
        checkRestartedMirror(t, record, action);
        checkRestartedPrincipal(t, record, action);
        if (action == QuorumRules.Action.RUN_EXPOSED && record.state() == MirroringState.SYNCHRONIZED && seen != null) {
            try (Connection c = principalConnection(t)) {
                if (PrincipalState.recordIf(c, t.epoch, MirroringState.DISCONNECTED, seen, config.remoteCallTimeout())) {
                    LOG.warn("lockstep: partnership {}: mirror {} lost; principal {} runs exposed (recorded on the principal)",
                            config.partnership(), t.mirror.name(), t.principal.name());
                    record = record.withState(MirroringState.DISCONNECTED);
                }
            }
        }
        if (action == QuorumRules.Action.RUN_EXPOSED) {
            bringMirrorBack(t, mirror, record);
        }
        synchronized (pathLock) {
            if (started - localChangeNanos >= 0) {
                followRecordWithoutWitness(t.epoch);
            }
        }
    }

    /**
     * HIGH_PERFORMANCE: the principal always commits alone and records its mirror SYNCHRONIZING
     * while it is reachable (the shipper applies the journal to it) or DISCONNECTED while it is
     * not; SUSPENDED stops the shipping. A returning old principal is demoted first.
     */
    private void tickHighPerformance(Coordinator.Topology t, PartnerHealth mirror, PrincipalState.Seen seen,
                                     QuorumRules.Action action, long started) throws SQLException {
        MirroringState now = record.state();
        if (action == QuorumRules.Action.RUN_EXPOSED && seen != null && now != MirroringState.SUSPENDED) {
            // A mirror only SUSPECT keeps its state: a flap would restart the shipping for nothing.
            MirroringState wanted = mirror == PartnerHealth.UP ? MirroringState.SYNCHRONIZING
                    : mirror == PartnerHealth.FAILED ? MirroringState.DISCONNECTED : now;
            if (wanted != now) {
                try (Connection c = principalConnection(t)) {
                    if (PrincipalState.recordIf(c, t.epoch, wanted, seen, config.remoteCallTimeout())) {
                        LOG.info("lockstep: partnership {} (high performance): mirror {} is {}", config.partnership(),
                                t.mirror.name(), wanted);
                        record = record.withState(wanted);
                    }
                }
            }
        }
        synchronized (pathLock) {
            if (started - localChangeNanos >= 0) {
                followRecordWithoutWitness(t.epoch);
            }
        }
        if (record.state() == MirroringState.SYNCHRONIZING && mirror == PartnerHealth.UP && !coordinator.shipping()) {
            // A returning old principal (after a forced service, say) is made mirror before anything ships to it.
            demoteIfReturned(t);
            coordinator.shipSoon();
        }
    }

    /** Without a witness: this coordinator changed the roles itself (forced service) and follows at once. */
    void followWithoutWitness(PartnershipRecord next) {
        synchronized (pathLock) {
            record = next;
            followRecordWithoutWitness(next.epoch());
            localChangeNanos = System.nanoTime();
        }
    }

    /** Without a witness the path follows the principal's record: in lockstep only while SYNCHRONIZED. */
    private void followRecordWithoutWitness(long epoch) {
        path = record.state() == MirroringState.SYNCHRONIZED ? CommitProtocol.Path.LOCKSTEP : CommitProtocol.Path.EXPOSED;
        pathEpoch = epoch;
    }

    /** A returning old principal is made a mirror of this epoch; it waits for catch-up there. */
    private void demoteIfReturned(Coordinator.Topology t) {
        try (Connection c = Failover.connect(t.mirror, config.remoteCallTimeout()); var st = c.createStatement()) {
            st.setQueryTimeout((int) Math.max(1, config.remoteCallTimeout().toSeconds()));
            try (var rs = st.executeQuery("SELECT role, epoch FROM lockstep.node_state")) {
                if (!rs.next() || rs.getLong(2) >= t.epoch) {
                    return;
                }
            }
        } catch (SQLException e) {
            return;
        }
        try {
            int[] settled = witness != null
                    ? Failover.demoteReturningPrincipal(witness, config.partnership(), t.mirror, t.principal, config.remoteCallTimeout())
                    : Failover.demoteReturning(config.partnership(), t.mirror, t.principal, t.epoch, config.remoteCallTimeout());
            LOG.warn("lockstep: partnership {}: node {} returned and became mirror at epoch {} ({} prepared transactions"
                    + " committed, {} rolled back); it needs catch-up", config.partnership(), t.mirror.name(), t.epoch,
                    settled[0], settled[1]);
        } catch (SQLException e) {
            LOG.warn("lockstep: partnership {}: returning node {} not demoted yet: {}", config.partnership(), t.mirror.name(),
                    e.getMessage());
        }
    }

    /**
     * Whether a pending role change has outlived anything its author could still be doing: every
     * step is bounded by the call timeout, so twice the partner timeout plus four calls is ample.
     */
    private boolean abandoned(WitnessStore.Sighting seen) {
        long limit = config.partnerTimeout().toMillis() * 2 + config.remoteCallTimeout().toMillis() * 4
                + config.connectTimeout().toMillis() * 2;
        return seen.pendingTarget() != null && seen.unchangedMillis() > limit;
    }

    @Override
    public void close() {
        if (ticks != null) {
            ticks.cancel(true);
        }
        detector.close();
    }
}
