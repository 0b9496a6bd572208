package dev.lockstep;

import dev.lockstep.commit.CommitTimings;
import dev.lockstep.commit.InDoubtResolver;
import dev.lockstep.commit.JournalBacklog;
import dev.lockstep.core.MirroringState;
import dev.lockstep.core.PartnerHealth;
import dev.lockstep.events.LockstepEvent;
import dev.lockstep.events.LockstepEvent.FailoverKind;
import dev.lockstep.events.LockstepEvent.Threshold;
import dev.lockstep.events.LockstepListener;
import dev.lockstep.events.WarningThresholds;
import dev.lockstep.jdbc.SqlStates;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Clock;
import java.time.Duration;
import java.util.EnumMap;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;

/**
 * A coordinator's counters, measurements and events: counts commits and their time on the
 * mirror, follows the send queue and catch-up each heartbeat, and tells listeners of every change
 * and threshold crossed, on a thread of its own so that no listener can hold up or break the
 * coordinator.
 */
final class Telemetry implements CommitTimings, AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(Telemetry.class);
    private static final int EVENT_BACKLOG = 1_000;

    private final String partnership;
    private final Clock clock;
    private final List<LockstepListener> listeners;
    private final WarningThresholds thresholds;
    private final ThreadPoolExecutor dispatcher;
    private final LongAdder mirrored = new LongAdder();
    private final LongAdder alone = new LongAdder();
    private final LongAdder applied = new LongAdder();
    private final LongAdder inDoubtCommitted = new LongAdder();
    private final LongAdder inDoubtRolledBack = new LongAdder();
    private final LongAdder overheadNanos = new LongAdder();
    private final LongAdder overheadCount = new LongAdder();
    private final LongAdder dropped = new LongAdder();
    private final Map<FailoverKind, LongAdder> failovers = new EnumMap<>(FailoverKind.class);
    private final List<CommitTimings> sinks = new CopyOnWriteArrayList<>();
    private final Set<Threshold> exceeded = EnumSet.noneOf(Threshold.class);
    private volatile Duration lastFailover;
    private volatile JournalBacklog.Backlog backlog = JournalBacklog.Backlog.NONE;
    private volatile double meanOverheadMillis;
    private volatile long catchUpReplayed;
    private volatile boolean freshCatchUp;
    private volatile Duration catchUpEstimate;
    private final AtomicInteger catchUpFailuresInARow = new AtomicInteger();
    private long replayedAtLastObservation;
    private long lastObservationNanos;
    private MirroringState lastState;
    private long lastEpoch;

    Telemetry(LockstepConfig config) {
        this.partnership = config.partnership();
        this.clock = config.clock();
        this.listeners = new CopyOnWriteArrayList<>(config.listeners());
        this.thresholds = config.warningThresholds();
        for (FailoverKind k : FailoverKind.values()) {
            failovers.put(k, new LongAdder());
        }
        this.dispatcher = new ThreadPoolExecutor(1, 1, 0, TimeUnit.MILLISECONDS, new ArrayBlockingQueue<>(EVENT_BACKLOG), r -> {
            Thread t = new Thread(r, "lockstep-" + partnership + "-events");
            t.setDaemon(true);
            return t;
        }, (r, executor) -> dropped.increment());
    }

    /** Adds a listener of this partnership's events from now on. */
    void addListener(LockstepListener listener) {
        listeners.add(listener);
    }

    /** Adds a receiver of every commit's timings (metrics binders). */
    void addCommitTimings(CommitTimings sink) {
        sinks.add(sink);
    }

    @Override
    public void committed(boolean committedAlone, long commitNanos, long mirrorNanos) {
        if (committedAlone) {
            alone.increment();
        } else {
            mirrored.increment();
            applied.increment();
            overheadNanos.add(mirrorNanos);
            overheadCount.increment();
        }
        for (CommitTimings sink : sinks) {
            try {
                sink.committed(committedAlone, commitNanos, mirrorNanos);
            } catch (RuntimeException e) {
                LOG.debug("lockstep: a commit timings receiver failed: {}", e.toString());
            }
        }
    }

    /** A role change this coordinator made or followed. */
    void failover(FailoverKind kind, long fromEpoch, long toEpoch, String principal, String mirror, Duration took) {
        failovers.get(kind).increment();
        if (kind != FailoverKind.FOLLOWED) {
            lastFailover = took;
        }
        emit(new LockstepEvent.Failover(partnership, clock.instant(), kind, fromEpoch, toEpoch, principal, mirror, took));
    }

    /** The journal kept for an absent mirror neared or passed its limit. */
    void journalLimit(JournalUsage usage, boolean exceeded) {
        emit(new LockstepEvent.JournalLimit(partnership, clock.instant(), usage, exceeded));
    }

    /** The failure detector saw a node's health change. */
    void healthChanged(String node, PartnerHealth before, PartnerHealth after) {
        emit(new LockstepEvent.NodeHealthChanged(partnership, clock.instant(), node, before, after));
    }

    /** The mirror came back as another incarnation while SYNCHRONIZED, and its journal was compared with the principal's. */
    void mirrorRestarted(String mirror, String incarnation, LockstepEvent.MirrorFinding finding) {
        emit(new LockstepEvent.MirrorRestarted(partnership, clock.instant(), mirror, incarnation, finding));
    }

    /** The principal came back lacking commits its mirror holds; this coordinator stopped writes on it. */
    void principalLostCommits(String principal, long epoch, String reason) {
        emit(new LockstepEvent.PrincipalLostCommits(partnership, clock.instant(), principal, epoch, reason));
    }

    /** In-doubt resolution ran. */
    void inDoubtResolved(InDoubtResolver.Result r) {
        if (r.committed() + r.rolledBack() == 0) {
            return;
        }
        inDoubtCommitted.add(r.committed());
        inDoubtRolledBack.add(r.rolledBack());
        emit(new LockstepEvent.InDoubtResolved(partnership, clock.instant(), r.committed(), r.rolledBack()));
    }

    /** A catch-up replayed more records on the mirror. */
    void replayed(long records) {
        applied.add(records);
        if (records > 0 && freshCatchUp) {
            freshCatchUp = false;
            catchUpReplayed = 0;
        }
        catchUpReplayed += records;
    }

    /**
     * A catch-up starts. Its count replaces the last one's from its first replayed record on: a
     * run that finds nothing to do (the monitor may start one on a reading taken just before the
     * last run finished) leaves the last run's count standing.
     */
    void catchUpStarted() {
        freshCatchUp = true;
    }

    /** This coordinator's catch-up or seeding failed; it is retried later. */
    void catchUpFailed(String mirror, Exception failure) {
        catchUpEstimate = null;
        String sqlState = failure instanceof java.sql.SQLException sql ? sql.getSQLState() : null;
        emit(new LockstepEvent.CatchUpFailed(partnership, clock.instant(), mirror, sqlState, String.valueOf(failure.getMessage()),
                clearsByItself(failure, sqlState), catchUpFailuresInARow.incrementAndGet()));
    }

    /**
     * Transactions in doubt awaiting resolution (marked transient where raised), a principal
     * too busy for the cut-over's lock (55P03), the partnership changing under the catch-up (40001),
     * a deadlock (40P01).
     */
    private static boolean clearsByItself(Exception failure, String sqlState) {
        return failure instanceof java.sql.SQLTransientException || SqlStates.LOCK_NOT_AVAILABLE.equals(sqlState)
                || SqlStates.SERIALIZATION_FAILURE.equals(sqlState) || SqlStates.DEADLOCK.equals(sqlState);
    }

    /** A catch-up ended without failing and without work: another coordinator's ran, or none was due. */
    void catchUpNotNeeded() {
        catchUpFailuresInARow.set(0);
    }

    /** This coordinator's catch-up finished. */
    void catchUpFinished(CatchUpResult result) {
        catchUpFailuresInARow.set(0);
        catchUpEstimate = null;
        emit(new LockstepEvent.CatchUpFinished(partnership, clock.instant(), result));
    }

    /**
     * One heartbeat's view: the mirroring state and the send queue. Raises state changes and
     * threshold crossings, and estimates the time a catch-up under way has left.
     *
     * @param epoch   the epoch of the record
     * @param state   the mirroring state
     * @param queue   the send queue, or null when it could not be read now (the last reading stands)
     */
    synchronized void observe(long epoch, MirroringState state, JournalBacklog.Backlog queue) {
        long now = System.nanoTime();
        if (lastState != null && state != lastState) {
            emit(new LockstepEvent.MirroringStateChanged(partnership, clock.instant(), epoch, lastState, state));
        }
        lastState = state;
        lastEpoch = epoch;
        if (queue != null) {
            backlog = queue;
        }
        long count = overheadCount.sumThenReset();
        long nanos = overheadNanos.sumThenReset();
        meanOverheadMillis = count == 0 ? 0 : nanos / 1e6 / count;
        estimateCatchUp(state, now);
        JournalBacklog.Backlog b = backlog;
        check(Threshold.SEND_QUEUE_RECORDS, b.records(), thresholds.sendQueueRecords());
        check(Threshold.OLDEST_UNSENT_AGE, b.oldest().toMillis() / 1000.0, thresholds.oldestUnsentAge().toMillis() / 1000.0);
        if (count > 0) {
            check(Threshold.COMMIT_OVERHEAD, meanOverheadMillis, thresholds.commitOverhead().toNanos() / 1e6);
        }
    }

    private void estimateCatchUp(MirroringState state, long now) {
        long replayed = catchUpReplayed;
        if (state != MirroringState.SYNCHRONIZING || lastObservationNanos == 0) {
            catchUpEstimate = null;
        } else {
            double seconds = (now - lastObservationNanos) / 1e9;
            double rate = (replayed - replayedAtLastObservation) / Math.max(seconds, 1e-3);
            catchUpEstimate = rate <= 0 ? null : Duration.ofMillis((long) (backlog.records() / rate * 1000));
        }
        replayedAtLastObservation = replayed;
        lastObservationNanos = now;
    }

    private void check(Threshold threshold, double value, double limit) {
        boolean wasAbove = exceeded.contains(threshold);
        // Cleared only below 90 % of the limit, so that a figure hovering at it does not flap.
        boolean above = wasAbove ? value > limit * 0.9 : value > limit;
        if (above == wasAbove) {
            return;
        }
        if (above) {
            exceeded.add(threshold);
            LOG.warn("lockstep: partnership {}: {} is {} (warning threshold {})", partnership, threshold, value, limit);
        } else {
            exceeded.remove(threshold);
        }
        emit(new LockstepEvent.ThresholdCrossed(partnership, clock.instant(), threshold, value, limit, above));
    }

    /** The counters and last measurements. */
    MirroringStatistics snapshot() {
        Map<FailoverKind, Long> counts = new EnumMap<>(FailoverKind.class);
        failovers.forEach((k, v) -> counts.put(k, v.sum()));
        JournalBacklog.Backlog b = backlog;
        return new MirroringStatistics(mirrored.sum(), alone.sum(), applied.sum(), inDoubtCommitted.sum(), inDoubtRolledBack.sum(),
                counts, lastFailover, b.records(), b.bytes(), b.oldest(), catchUpReplayed, catchUpEstimate, meanOverheadMillis);
    }

    private void emit(LockstepEvent event) {
        if (listeners.isEmpty() || dispatcher.isShutdown()) {
            return;
        }
        dispatcher.execute(() -> deliver(event));
    }

    private void deliver(LockstepEvent event) {
        for (LockstepListener listener : listeners) {
            try {
                listener.on(event);
            } catch (RuntimeException | Error e) {
                if (e instanceof VirtualMachineError) {
                    throw e;
                }
                LOG.warn("lockstep: partnership {}: a listener failed on {}: {}", partnership, event, e.toString());
            }
        }
    }

    @Override
    public void close() {
        dispatcher.shutdown();
        try {
            dispatcher.awaitTermination(1, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        long lost = dropped.sum();
        if (lost > 0) {
            LOG.warn("lockstep: partnership {}: {} events were dropped because listeners fell {} events behind", partnership,
                    lost, EVENT_BACKLOG);
        }
    }
}
