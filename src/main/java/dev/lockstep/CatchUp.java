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
 * the rest, and records SYNCHRONIZED on the principal and at the witness together.
 */
final class CatchUp {

    /** A pass that leaves at most this many records behind is followed by the cut-over. */
    static final int CUT_OVER_BACKLOG = 100;
    /** Under a write rate the mirror cannot match, cut over anyway after this many passes. */
    static final int MAX_PASSES = 20;
    /** How long the cut-over waits for writers under way; new writers wait behind it meanwhile. */
    static final java.time.Duration CUT_OVER_LOCK_WAIT = java.time.Duration.ofMillis(250);
    static final int CUT_OVER_ATTEMPTS = 20;
    private static final String LOCK_NOT_AVAILABLE = "55P03";


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
                throw SqlStates.error(SqlStates.NOT_READY, "lockstep: mirror node " + t.mirror.name() + " of partnership "
                        + config.partnership() + " holds transactions in doubt; in-doubt resolution settles them before catch-up", null);
            }
            PartnershipRecord synchronizing = begin(p, t, current);
            if (synchronizing == null) {
                return null;
            }
            if (JournalReplay.preparedOn(p, config.partnership()) > 0) {
                throw SqlStates.error(SqlStates.NOT_READY, "lockstep: principal " + t.principal.name() + " of partnership "
                        + config.partnership() + " holds transactions in doubt; in-doubt resolution settles them before catch-up", null);
            }
            seeded = Seeding.prepareMirror(config, witness, p, m, t) != null;
            JournalReplay replay = new JournalReplay(p, m, config.remoteCallTimeout());
            replay.settleStart(t.epoch, CUT_OVER_LOCK_WAIT);
            long started = System.nanoTime();
            int passes = 0;
            int replayed = 0;
            for (int attempt = 1; ; attempt++) {
                List<JournalReplay.Key> missing = replay.missing();
                while (missing.size() > CUT_OVER_BACKLOG && passes < MAX_PASSES) {
                    replayed += replayed(replay.replay(missing));
                    passes++;
                    missing = replay.missing();
                }
                replayed += replayed(replay.replay(missing));
                passes++;
                try {
                    return cutOver(p, replay, t, synchronizing, replayed, passes, started);
                } catch (SQLException e) {
                    if (!LOCK_NOT_AVAILABLE.equals(e.getSQLState()) || attempt >= CUT_OVER_ATTEMPTS) {
                        throw e;
                    }
                }
            }
        }
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
            return seen;
        }
        RoleChanges.Result resume = RoleChanges.resume(seen);
        if (seen.state() != MirroringState.DISCONNECTED || !resume.allowed()) {
            return null;
        }
        return witness.transition(seen, resume.next(), null, "mirror " + t.mirror.name() + " catching up",
                coordinator.config().coordinatorId()) ? resume.next() : null;
    }

    /**
     * Holds new writers, replays the rest and records SYNCHRONIZED. Not tried while the principal
     * holds transactions in doubt (the lock would wait for them, holding every writer meanwhile);
     * the lock wait is short, and a busy principal means another pass and another try.
     *
     * @throws SQLException 55P03 when the principal was busy: nothing changed
     */
    private CatchUpResult cutOver(Connection p, JournalReplay replay, Coordinator.Topology t, PartnershipRecord synchronizing,
                                  int replayed, int passes, long started) throws SQLException {
        LockstepConfig config = coordinator.config();
        RoleChanges.Result caughtUp = RoleChanges.caughtUp(synchronizing);
        if (!caughtUp.allowed()) {
            throw SqlStates.error(SqlStates.NOT_READY, "lockstep: catch-up of partnership " + config.partnership()
                    + " cannot finish: " + caughtUp.refusal(), null);
        }
        if (JournalReplay.preparedOn(p, config.partnership()) > 0) {
            throw SqlStates.error(LOCK_NOT_AVAILABLE, "lockstep: principal " + t.principal.name()
                    + " holds transactions in doubt; the cut-over waits for their resolution", null);
        }
        long start = System.nanoTime();
        replay.beginCutOver(CUT_OVER_LOCK_WAIT);
        try {
            int last = replayed(replay.replay(replay.missingSinceStart()));
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
            return new CatchUpResult(replayed + last, passes + 1, (end - start) / 1e6, (end - started) / 1e6, caughtUp.next(), seeded);
        } catch (SQLException | RuntimeException e) {
            try {
                replay.abandonCutOver();
            } catch (SQLException rollback) {
                e.addSuppressed(rollback);
            }
            throw e;
        }
    }
}
