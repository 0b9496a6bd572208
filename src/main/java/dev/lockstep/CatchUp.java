package dev.lockstep;

import dev.lockstep.commit.JournalReplay;
import dev.lockstep.commit.PrincipalState;
import dev.lockstep.core.MirroringState;
import dev.lockstep.core.PartnershipRecord;
import dev.lockstep.core.RoleChanges;
import dev.lockstep.jdbc.SqlStates;
import dev.lockstep.witness.WitnessStore;

import java.sql.Connection;
import java.sql.SQLException;
import java.util.List;

/**
 * Brings a DISCONNECTED mirror back to SYNCHRONIZED while the principal keeps serving exposed:
 * the partnership moves to SYNCHRONIZING, the mirror replays the journal records it lacks in
 * passes until little is left, then a short cut-over holds new writers at the principal, replays
 * the rest, and records SYNCHRONIZED on the principal and at the witness together. Writers faster
 * than the mirror's replay are slowed by held steps of bounded length until it has caught up.
 */
final class CatchUp {

    /** A pass that leaves at most this many records behind is followed by the cut-over. */
    static final int CUT_OVER_BACKLOG = 100;
    /** The most records a pass replays before it checks whether it gained ground. */
    static final int PASS_RECORDS = 1000;
    /** How long the cut-over waits for writers under way; new writers wait behind it meanwhile. */
    static final java.time.Duration CUT_OVER_LOCK_WAIT = java.time.Duration.ofMillis(250);
    static final int CUT_OVER_ATTEMPTS = 20;
    /** The most records replayed while writers are held; more left means another step. */
    static final int CUT_OVER_STEP = 250;
    /**
     * How long writers are held for one step, give or take one chunk: once it is up, the step
     * ends after the chunk under way (always at least one), so that large or slow records do not
     * hold writers for as long as 250 of them take.
     */
    static final java.time.Duration STEP_TIME = java.time.Duration.ofMillis(100);
    /** Records replayed between two looks at the step's time. */
    static final int STEP_CHUNK = 25;
    /**
     * The longest a step may grow to. Steps double their time, records and chunk when
     * {@link #STEPS_TO_GAIN} steps in a row left no less behind (more writers than a step replays
     * records: each writer gets about one transaction in between steps), so that catch-up still
     * finishes.
     */
    static final java.time.Duration MAX_STEP_TIME = java.time.Duration.ofMillis(1600);
    static final int STEPS_TO_GAIN = 3;
    private static final String LOCK_NOT_AVAILABLE = SqlStates.LOCK_NOT_AVAILABLE;


    private final Coordinator coordinator;
    private final WitnessStore witness;
    private final java.util.function.Consumer<PartnershipRecord> beforeRelease;
    /** The principal's mirroring change count the cut-over expects; see {@link #begin}. */
    private long expectedChange;
    /** Whether this run seeded the mirror before replaying; see {@link Seeding}. */
    private boolean seeded;

    /**
     * @param coordinator   whose configuration and connections to use
     * @param witness       the witness, or null without one
     * @param beforeRelease told of the SYNCHRONIZED record while new writers are still held, so
     *                      that the coordinator sends them to the mirror too once they go on
     */
    CatchUp(Coordinator coordinator, WitnessStore witness, java.util.function.Consumer<PartnershipRecord> beforeRelease) {
        this.coordinator = coordinator;
        this.witness = witness;
        this.beforeRelease = beforeRelease;
    }

    /**
     * Catches the topology's mirror up, if no other coordinator is doing it.
     *
     * @param t       the current roles and epoch
     * @param current the partnership as last read (DISCONNECTED or SYNCHRONIZING)
     * @return the outcome; null when another coordinator holds the claim or the state does not allow it
     * @throws SQLException when a node or the witness fails; the partnership stays as it was or SYNCHRONIZING
     */
    CatchUpResult run(Coordinator.Topology t, PartnershipRecord current) throws SQLException {
        LockstepConfig config = coordinator.config();
        try (Connection p = coordinator.connectForCatchUp(t.principal, false);
             Connection m = coordinator.connectForCatchUp(t.mirror, true)) {
            if (!JournalReplay.claim(p, config.partnership())) {
                return null;
            }
            if (JournalReplay.preparedOn(m, config.partnership()) > 0) {
                throw SqlStates.transientError(SqlStates.NOT_READY, "lockstep: mirror node " + t.mirror.name() + " of partnership "
                        + config.partnership() + " holds transactions in doubt; in-doubt resolution settles them before catch-up", null);
            }
            PartnershipRecord synchronizing = begin(p, t, current);
            if (synchronizing == null) {
                return null;
            }
            if (JournalReplay.preparedOn(p, config.partnership()) > 0) {
                throw SqlStates.transientError(SqlStates.NOT_READY, "lockstep: principal " + t.principal.name() + " of partnership "
                        + config.partnership() + " holds transactions in doubt; in-doubt resolution settles them before catch-up", null);
            }
            seeded = Seeding.prepareMirror(config, witness, p, m, t) != null;
            JournalReplay replay = new JournalReplay(p, m, config.remoteCallTimeout());
            replay.settleStart(t.epoch, CUT_OVER_LOCK_WAIT);
            Progress progress = new Progress(System.nanoTime());
            boolean stepped = false;
            for (int busy = 0; ; ) {
                if (!stepped) {
                    passWhileWritersRun(replay, progress);
                }
                try {
                    CatchUpResult done = cutOver(p, replay, t, synchronizing, progress);
                    if (done != null) {
                        return done;
                    }
                    stepped = true;
                    busy = 0; // the budget is for lock waits in a row, not over a long catch-up
                } catch (SQLException e) {
                    if (!LOCK_NOT_AVAILABLE.equals(e.getSQLState()) || ++busy >= CUT_OVER_ATTEMPTS) {
                        throw e;
                    }
                    stepped = false;
                }
            }
        }
    }

    /** Records replayed and passes made so far, and when the catch-up began. */
    private static final class Progress {
        final long started;
        int replayed;
        int passes;
        long longestStepNanos;
        /** How many times the step's time, records and chunk are their base values. */
        int stepScale = 1;
        /** What was left at the start of the last steps at this scale, oldest first. */
        final java.util.ArrayDeque<Integer> stepRests = new java.util.ArrayDeque<>();

        /** Grows the steps once three steps in a row gained nothing over all. */
        void stepLeft(int rest) {
            stepRests.addLast(rest);
            if (stepRests.size() <= STEPS_TO_GAIN) {
                return;
            }
            int before = stepRests.removeFirst();
            if (rest >= before && STEP_TIME.multipliedBy(stepScale * 2L).compareTo(MAX_STEP_TIME) <= 0) {
                stepScale *= 2;
                stepRests.clear();
            }
        }

        Progress(long started) {
            this.started = started;
        }
    }

    /**
     * Replays what the mirror lacks while writers go on, in passes of at most
     * {@link #PASS_RECORDS}, for as long as each pass leaves less behind than the one before and
     * more than {@link #CUT_OVER_BACKLOG} is left. A pass that gained no ground means writers
     * commit faster than the mirror replays: the held steps of the cut-over take it from there.
     */
    private void passWhileWritersRun(JournalReplay replay, Progress progress) throws SQLException {
        List<JournalReplay.Key> missing = replay.missing();
        while (missing.size() > CUT_OVER_BACKLOG) {
            progress.replayed += replayed(replay.replay(missing.subList(0, Math.min(missing.size(), PASS_RECORDS))));
            progress.passes++;
            List<JournalReplay.Key> left = replay.missing();
            if (left.size() >= missing.size()) {
                return;
            }
            missing = left;
        }
        progress.replayed += replayed(replay.replay(missing));
        progress.passes++;
    }

    private int replayed(int records) {
        coordinator.telemetry().replayed(records);
        return records;
    }

    /**
     * Moves the partnership to SYNCHRONIZING (a compare-and-set: one coordinator wins) and notes
     * the principal's change count, which the cut-over requires unchanged: a suspend, or another
     * catch-up, that came in between makes it give up rather than overwrite.
     */
    private PartnershipRecord begin(Connection p, Coordinator.Topology t, PartnershipRecord current) throws SQLException {
        java.time.Duration timeout = coordinator.config().remoteCallTimeout();
        p.setAutoCommit(false);
        try {
            PrincipalState.Seen seenOnPrincipal = PrincipalState.readSeen(p, timeout);
            if (witness == null) {
                if ((seenOnPrincipal.state() != MirroringState.DISCONNECTED && seenOnPrincipal.state() != MirroringState.SYNCHRONIZING)
                        || !PrincipalState.recordIf(p, t.epoch, MirroringState.SYNCHRONIZING, seenOnPrincipal, timeout)) {
                    return null;
                }
                expectedChange = seenOnPrincipal.change() + 1;
                return current.withState(MirroringState.SYNCHRONIZING);
            }
            expectedChange = seenOnPrincipal.change();
        } finally {
            p.setAutoCommit(true);
        }
        PartnershipRecord seen = witness.read(current.name()).record();
        if (seen.epoch() != t.epoch) {
            return null;
        }
        if (seen.state() == MirroringState.SYNCHRONIZING) {
            return resumedOnPrincipal(p, t) ? seen : null;
        }
        RoleChanges.Result resume = RoleChanges.resume(seen);
        if (seen.state() != MirroringState.DISCONNECTED || !resume.allowed()) {
            return null;
        }
        return witness.transition(seen, resume.next(), null, "mirror " + t.mirror.name() + " catching up",
                coordinator.config().coordinatorId()) ? resume.next() : null;
    }

    /**
     * A resume records SYNCHRONIZING at the witness, then on the principal. Should the principal
     * still record SUSPENDED, that second write (or the operator's retry) would change its state
     * under this run, which would then be abandoned, seed and all; so the run records it first,
     * and the resume finds it done. Also completes a resume whose coordinator died in between.
     *
     * @return false when the principal's state changed meanwhile (the next tick tries again)
     */
    private boolean resumedOnPrincipal(Connection p, Coordinator.Topology t) throws SQLException {
        java.time.Duration timeout = coordinator.config().remoteCallTimeout();
        p.setAutoCommit(false);
        try {
            PrincipalState.Seen now = PrincipalState.readSeen(p, timeout);
            if (now.change() != expectedChange) {
                return false;
            }
            if (now.state() != MirroringState.SUSPENDED) {
                return true;
            }
            if (!PrincipalState.recordIf(p, t.epoch, MirroringState.SYNCHRONIZING, now, timeout)) {
                return false;
            }
            expectedChange = now.change() + 1;
            return true;
        } finally {
            p.setAutoCommit(true);
        }
    }

    /**
     * Holds new writers, replays the rest and records SYNCHRONIZED. When the rest is more than
     * one step can replay ({@link #CUT_OVER_STEP} records or {@link #STEP_TIME}, whichever comes
     * first; writers outran the passes, or records are slow to apply), it replays what the step
     * allows, lets the held writers go and returns null: the caller steps again. So writers are
     * never held for longer than one step, and they are slowed to about one transaction each per
     * step until the mirror has caught up. Not tried while the principal holds transactions in doubt (the
     * lock would wait for them, holding every writer meanwhile); the lock wait is short, and a
     * busy principal means another pass and another try.
     *
     * @return the outcome, or null after a step that left the partnership SYNCHRONIZING
     * @throws SQLException 55P03 when the principal was busy: nothing changed
     */
    private CatchUpResult cutOver(Connection p, JournalReplay replay, Coordinator.Topology t, PartnershipRecord synchronizing,
                                  Progress progress) throws SQLException {
        LockstepConfig config = coordinator.config();
        RoleChanges.Result caughtUp = RoleChanges.caughtUp(synchronizing);
        if (!caughtUp.allowed()) {
            throw SqlStates.error(SqlStates.NOT_READY, "lockstep: catch-up of partnership " + config.partnership()
                    + " cannot finish: " + caughtUp.refusal(), null);
        }
        if (JournalReplay.preparedOn(p, config.partnership()) > 0) {
            throw SqlStates.transientError(LOCK_NOT_AVAILABLE, "lockstep: principal " + t.principal.name()
                    + " holds transactions in doubt; the cut-over waits for their resolution", null);
        }
        long start = System.nanoTime();
        replay.beginCutOver(CUT_OVER_LOCK_WAIT);
        long held = System.nanoTime();
        List<JournalReplay.Key> rest;
        int done;
        try {
            rest = replay.missingSinceStart();
            progress.passes++;
            progress.stepLeft(rest.size());
            done = replayWithinStep(replay, rest, progress);
        } catch (SQLException | RuntimeException e) {
            abandonQuietly(replay, e);
            throw e;
        }
        if (done < rest.size()) {
            replay.abandonCutOver(); // lets the held writers go until the next step
            progress.longestStepNanos = Math.max(progress.longestStepNanos, System.nanoTime() - held);
            return null;
        }
        try {
            if (!replay.markSynchronized(t.epoch, expectedChange)) {
                throw SqlStates.error(SqlStates.SERIALIZATION_FAILURE, "lockstep: node " + t.principal.name()
                        + " is no longer principal at epoch " + t.epoch + ", or its mirroring state changed during the"
                        + " catch-up (suspended, say); catch-up abandoned", null);
            }
            if (seeded) {
                dev.lockstep.commit.SeedMark.mark(p, t.epoch, false);
            }
            if (witness != null && !witness.transition(synchronizing, caughtUp.next(), null,
                    "mirror " + t.mirror.name() + " caught up", config.coordinatorId())) {
                throw SqlStates.error(SqlStates.SERIALIZATION_FAILURE, "lockstep: partnership " + config.partnership()
                        + " changed at the witness during the cut-over; catch-up abandoned", null);
            }
            beforeRelease.accept(caughtUp.next());
            replay.finishCutOver();
            long end = System.nanoTime();
            progress.longestStepNanos = Math.max(progress.longestStepNanos, end - held);
            return new CatchUpResult(progress.replayed, progress.passes, (end - start) / 1e6, (end - progress.started) / 1e6,
                    caughtUp.next(), seeded, progress.longestStepNanos / 1e6);
        } catch (SQLException | RuntimeException e) {
            abandonQuietly(replay, e);
            throw e;
        }
    }

    /**
     * Replays the held step's records in chunks until all are done, {@link #CUT_OVER_STEP} are
     * done, or {@link #STEP_TIME} is up (each times the step's scale).
     *
     * @return how many of {@code rest}, from the first, were replayed
     */
    private int replayWithinStep(JournalReplay replay, List<JournalReplay.Key> rest, Progress progress) throws SQLException {
        int limit = Math.min(rest.size(), CUT_OVER_STEP * progress.stepScale);
        long deadline = System.nanoTime() + STEP_TIME.toNanos() * progress.stepScale;
        int done = 0;
        while (done < limit) {
            int end = Math.min(limit, done + STEP_CHUNK * progress.stepScale);
            progress.replayed += replayed(replay.replay(rest.subList(done, end)));
            done = end;
            if (System.nanoTime() - deadline >= 0) {
                break;
            }
        }
        return done;
    }

    private static void abandonQuietly(JournalReplay replay, Exception cause) {
        try {
            replay.abandonCutOver();
        } catch (SQLException rollback) {
            cause.addSuppressed(rollback);
        }
    }
}
