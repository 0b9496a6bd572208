package dev.lockstep;

import dev.lockstep.commit.CommitProtocol;
import dev.lockstep.commit.PrincipalState;
import dev.lockstep.core.ExposedLease;
import dev.lockstep.core.MirroringState;
import dev.lockstep.core.PartnerHealth;
import dev.lockstep.core.PartnershipRecord;
import dev.lockstep.core.QuorumRules;
import dev.lockstep.core.RoleChanges;
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
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

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
    private volatile PartnershipRecord record;
    private volatile CommitProtocol.Path path = CommitProtocol.Path.LOCKSTEP;
    private volatile long leaseSentNanos = Long.MIN_VALUE / 2;
    private volatile long leaseEpoch;
    private volatile long pathEpoch;
    private volatile QuorumRules.Action lastAction;
    private ScheduledFuture<?> ticks;

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
                System::nanoTime, scheduler, (node, before, after) ->
                LOG.info("lockstep: partnership {}: node {} is {} (was {})", config.partnership(), node, after, before));
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
        if (epoch != pathEpoch) {
            return CommitProtocol.Path.LOCKSTEP;
        }
        if (p == CommitProtocol.Path.EXPOSED && witness != null && (leaseEpoch != epoch
                || !ExposedLease.holds(leaseSentNanos, System.nanoTime(), config.partnerTimeout().toMillis()))) {
            return CommitProtocol.Path.REFUSED;
        }
        return p;
    }

    /** The witness's record as last read. */
    PartnershipRecord record() {
        return record;
    }

    /** What the quorum rules said last. */
    QuorumRules.Action lastAction() {
        return lastAction;
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
        try {
            long sent = System.nanoTime();
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
            record = seen.record();
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
        QuorumRules.Action action = QuorumRules.decide(new QuorumRules.Observation(record, principal, mirror, witnessHealth,
                unseen, quiet));
        if (action == QuorumRules.Action.CUT_OFF_FROM_PRINCIPAL && quiet - unseen < config.heartbeatInterval().toMillis()) {
            // Act when the quiet period ends rather than up to a heartbeat later.
            scheduler.schedule(this::tickQuietly, Math.max(10, quiet - unseen + 10), TimeUnit.MILLISECONDS);
        }
        if (action != lastAction) {
            LOG.info("lockstep: partnership {} at epoch {}: {}", config.partnership(), record.epoch(), action);
        }
        lastAction = action;
        act(action, t, mirror, quiet);
    }

    private void act(QuorumRules.Action action, Coordinator.Topology t, PartnerHealth mirror, long quiet) throws SQLException {
        pathEpoch = t.epoch;
        switch (action) {
            case FAILOVER -> {
                path = CommitProtocol.Path.REFUSED;
                long sent = System.nanoTime();
                PartnershipRecord next = Failover.promoteMirror(witness, config.partnership(), t.mirror, PartnerHealth.FAILED,
                        Duration.ofMillis(quiet), config.remoteCallTimeout(), config.coordinatorId());
                // The witness counted the new principal as seen when it recorded the promotion: that
                // is this coordinator's lease, so the new principal serves at once, exposed.
                leaseSentNanos = sent;
                leaseEpoch = next.epoch();
                record = next;
                path = next.state() == MirroringState.SYNCHRONIZED ? CommitProtocol.Path.LOCKSTEP : CommitProtocol.Path.EXPOSED;
                pathEpoch = next.epoch();
                coordinator.adopt(next);
            }
            case RUN_EXPOSED -> {
                if (record.state() == MirroringState.SYNCHRONIZED
                        || (record.state() == MirroringState.SYNCHRONIZING && mirror != PartnerHealth.UP)) {
                    // Recorded first, so that no coordinator promotes a mirror that misses what follows.
                    RoleChanges.Result lost = RoleChanges.mirrorLost(record);
                    if (witness.transition(record, lost.next(), null, "mirror " + t.mirror.name() + " lost", config.coordinatorId())) {
                        record = lost.next();
                    }
                    path = CommitProtocol.Path.LOCKSTEP;
                    return;
                }
                path = CommitProtocol.Path.EXPOSED;
                if ((record.state() == MirroringState.DISCONNECTED || record.state() == MirroringState.SUSPENDED)
                        && mirror == PartnerHealth.UP) {
                    demoteIfReturned(t);
                }
            }
            case STOP_WRITES -> path = CommitProtocol.Path.REFUSED;
            default -> path = CommitProtocol.Path.LOCKSTEP;
        }
    }

    /**
     * Without a witness (HIGH_SAFETY): the principal's own record says whether its mirror is
     * behind. A lost mirror is recorded there first, then the principal commits alone; nothing
     * fails over by itself.
     */
    private void tickWithoutWitness(Coordinator.Topology t, PartnerHealth principal, PartnerHealth mirror) throws SQLException {
        if (principal == PartnerHealth.UP) {
            try (Connection c = t.principalPool.getConnection()) {
                record = new PartnershipRecord(config.partnership(), t.epoch, t.principal.name(), t.mirror.name(),
                        PrincipalState.read(c, config.remoteCallTimeout()), config.mode());
            }
        }
        QuorumRules.Action action = QuorumRules.decide(new QuorumRules.Observation(record, principal, mirror,
                PartnerHealth.FAILED, 0, config.partnerTimeout().toMillis()));
        if (action != lastAction) {
            LOG.info("lockstep: partnership {} at epoch {} (no witness): {}", config.partnership(), t.epoch, action);
        }
        lastAction = action;
        if (action == QuorumRules.Action.RUN_EXPOSED && record.state() == MirroringState.SYNCHRONIZED) {
            try (Connection c = t.principalPool.getConnection()) {
                if (PrincipalState.record(c, t.epoch, MirroringState.DISCONNECTED, config.remoteCallTimeout())) {
                    LOG.warn("lockstep: partnership {}: mirror {} lost; principal {} runs exposed (recorded on the principal)",
                            config.partnership(), t.mirror.name(), t.principal.name());
                    record = record.withState(MirroringState.DISCONNECTED);
                }
            }
        }
        if (record.state() != MirroringState.SYNCHRONIZED && mirror == PartnerHealth.UP) {
            demoteIfReturned(t);
        }
        followRecordWithoutWitness(t.epoch);
    }

    /** Without a witness: this coordinator changed the roles itself (forced service) and follows at once. */
    void followWithoutWitness(PartnershipRecord next) {
        record = next;
        followRecordWithoutWitness(next.epoch());
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
