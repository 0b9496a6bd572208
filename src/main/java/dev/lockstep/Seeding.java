package dev.lockstep;

import dev.lockstep.commit.Divergence;
import dev.lockstep.commit.JournalReplay;
import dev.lockstep.commit.PrincipalState;
import dev.lockstep.commit.SeedMark;
import dev.lockstep.commit.SnapshotCopy;
import dev.lockstep.core.CatchUpPlan;
import dev.lockstep.core.MirroringState;
import dev.lockstep.core.PartnershipRecord;
import dev.lockstep.core.RoleChanges;
import dev.lockstep.jdbc.SqlStates;
import dev.lockstep.witness.WitnessStore;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.sql.Connection;
import java.sql.SQLException;
import java.util.List;

/**
 * Decides, before a catch-up replays anything, whether the mirror can be caught up or must be
 * seeded, and seeds it: a returning node that holds transactions the principal lacks has them
 * reported first; a mirror the principal marked (its journal limit was exceeded, or it diverged)
 * and a blank new mirror get a snapshot copy of the principal. The catch-up then replays what
 * committed after the snapshot and cuts over as usual.
 */
final class Seeding {

    private static final Logger LOG = LoggerFactory.getLogger(Seeding.class);

    private Seeding() {
    }

    /**
     * Reports divergence and seeds the mirror if it must be; the caller holds the catch-up claim.
     *
     * @param config    the coordinator's configuration
     * @param witness   the witness, or null
     * @param principal a connection to the principal, autocommit on
     * @param mirror    a catch-up connection to the mirror (replica role), autocommit on
     * @param t         the roles and epoch
     * @return the copy when the mirror was seeded; null when it only needs catching up
     * @throws SQLException when a node fails; the mirror stays as it was and stays marked
     */
    static SnapshotCopy.Result prepareMirror(LockstepConfig config, WitnessStore witness, Connection principal,
                                             Connection mirror, Coordinator.Topology t) throws SQLException {
        List<JournalReplay.Key> divergent = Divergence.find(principal, mirror);
        if (!divergent.isEmpty()) {
            int reported = Divergence.report(principal, mirror, t.mirror.name(), divergent);
            LOG.warn("lockstep: partnership {}: mirror {} holds {} transactions that principal {} lacks (committed there alone"
                            + " before a forced service); {} newly reported in lockstep.divergence_report on {}; the mirror is re-seeded",
                    config.partnership(), t.mirror.name(), divergent.size(), t.principal.name(), reported, t.principal.name());
            mark(config, witness, principal, t.epoch, t.mirror.name(), "mirror " + t.mirror.name() + " diverged: " + divergent.size()
                    + " transactions reported, re-seeding");
        }
        boolean marked = SeedMark.marked(principal);
        boolean mirrorBlank = SeedMark.blank(mirror);
        boolean droppedEarlier = SeedMark.droppedJournalBefore(mirror, t.epoch);
        JournalReplay.Key held = SeedMark.heldPosition(mirror);
        JournalReplay.Key trimmed = SeedMark.lastTrimmed(principal);
        boolean belowTrim = !mirrorBlank && CatchUpPlan.belowTrim(held.epoch(), held.seq(), trimmed.epoch(), trimmed.seq());
        CatchUpPlan.Kind kind = CatchUpPlan.decide(marked, mirrorBlank, SeedMark.blank(principal), divergent.size(), droppedEarlier,
                belowTrim);
        if (kind == CatchUpPlan.Kind.CATCH_UP) {
            return null;
        }
        if (droppedEarlier) {
            LOG.warn("lockstep: partnership {}: mirror {} dropped its own journal of an earlier epoch at its limit while it was"
                    + " principal; transactions it committed alone then cannot be listed in the divergence report; re-seeding it",
                    config.partnership(), t.mirror.name());
        }
        if (belowTrim) {
            LOG.warn("lockstep: partnership {}: mirror {} holds journal records up to {}, below {}, the newest record"
                    + " principal {} deleted (restored from an older backup?); what it lacks cannot be replayed,"
                    + " re-seeding it", config.partnership(), t.mirror.name(), held, trimmed, t.principal.name());
        }
        if (!marked && divergent.isEmpty()) {
            mark(config, witness, principal, t.epoch, t.mirror.name(), "mirror " + t.mirror.name() + (droppedEarlier
                    ? " dropped its journal of an earlier epoch: re-seeding it"
                    : belowTrim ? " lacks journal records the principal trimmed: re-seeding it" : " is blank: seeding it"));
        }
        long started = System.nanoTime();
        SnapshotCopy.Result copy = SnapshotCopy.copy(principal, mirror, t.mirror.name(), t.epoch, config.seedingTimeout());
        // Seeded: a later failure replays from the copy rather than seeding all over again.
        SeedMark.mark(principal, t.epoch, false);
        LOG.warn("lockstep: partnership {}: mirror {} seeded from principal {} at epoch {}: {} tables, {} rows, {} journal records"
                        + " in {} ms; catch-up replays what committed since", config.partnership(), t.mirror.name(), t.principal.name(),
                t.epoch, copy.tables(), copy.rows(), copy.journalRecords(), (System.nanoTime() - started) / 1_000_000);
        return copy;
    }

    /**
     * At start: a blank mirror of a principal that holds something is new (or was wiped). It
     * joins at the principal's epoch, and the partnership records it behind and marked for
     * seeding, so that nothing commits in lockstep on it before it is seeded.
     *
     * <p>A blank mirror left as it is would count as synchronized wherever the partnership's
     * record says so (a replaced mirror database, say), and could be promoted empty; so a start
     * that cannot enrol it is refused.
     *
     * @return true when the mirror was enrolled for seeding
     * @throws SQLException 55000 when the mirror is blank but could not be enrolled; nothing changed
     */
    static boolean enrolBlankMirror(LockstepConfig config, NodeConfig principalNode, NodeConfig mirrorNode, long epoch,
                                    WitnessStore witness) throws SQLException {
        try (Connection p = Coordinator.connectDirect(config, principalNode);
             Connection m = Coordinator.connectDirect(config, mirrorNode)) {
            // Marked on the principal: enrolled already and recorded behind, its seed pending or
            // under way (the mirror stays blank until the copy commits).
            if (!SeedMark.blank(m) || SeedMark.blank(p) || SeedMark.marked(p)) {
                return false;
            }
            // Under the catch-up claim (released when p closes), which a journal trim or a
            // catch-up holds for a moment: a coordinator that enrols the mirror marks it under the
            // claim, so one that waited finds it marked and leaves the seed to it, instead of
            // marking it again, which would seed it a second time afterwards.
            if (!JournalReplay.claimWithin(p, config.partnership(), config.remoteCallTimeout())) {
                throw notEnrolled(config, principalNode, mirrorNode, "another coordinator held the partnership's catch-up claim"
                        + " on the principal for longer than remoteCallTimeout (" + config.remoteCallTimeout().toMillis() + " ms)");
            }
            if (!SeedMark.blank(m) || SeedMark.marked(p)) {
                return false;
            }
            if (witness != null) {
                PartnershipRecord r = witness.read(config.partnership()).record();
                if (r.epoch() != epoch || !r.mirror().equals(mirrorNode.name())) {
                    throw notEnrolled(config, principalNode, mirrorNode, "the witness records epoch " + r.epoch() + " with mirror "
                            + r.mirror() + ", the principal epoch " + epoch);
                }
                if (r.state() == MirroringState.SYNCHRONIZED || r.state() == MirroringState.SYNCHRONIZING) {
                    RoleChanges.Result lost = RoleChanges.mirrorLost(r);
                    witness.transition(r, lost.next(), null, "mirror " + mirrorNode.name() + " is a new, blank node",
                            config.coordinatorId());
                }
            }
            p.setAutoCommit(false);
            PrincipalState.Seen seen = PrincipalState.readSeen(p, config.remoteCallTimeout());
            if (seen.state() == MirroringState.SYNCHRONIZED || seen.state() == MirroringState.SYNCHRONIZING) {
                PrincipalState.recordIf(p, epoch, MirroringState.DISCONNECTED, seen, config.remoteCallTimeout());
            }
            p.setAutoCommit(true);
            String why = "mirror " + mirrorNode.name() + " is a new, blank node: seeding it";
            if (!SeedMark.mark(p, epoch, true)) {
                throw notEnrolled(config, principalNode, mirrorNode, "node " + principalNode.name()
                        + " stopped being principal at epoch " + epoch);
            }
            if (witness != null) {
                witness.markMirrorForSeeding(config.partnership(), epoch, why, config.coordinatorId());
            }
            SeedMark.enrolAsMirror(m, config.partnership(), epoch);
            LOG.warn("lockstep: partnership {}: {} (principal {} at epoch {})", config.partnership(), why, principalNode.name(), epoch);
            return true;
        }
    }

    private static SQLException notEnrolled(LockstepConfig config, NodeConfig principalNode, NodeConfig mirrorNode, String why) {
        return SqlStates.error(SqlStates.NOT_READY, "lockstep: partnership " + config.partnership() + " cannot start: mirror "
                + mirrorNode.name() + " is a new, blank node beside principal " + principalNode.name() + " and was not enrolled"
                + " for seeding: " + why + "; retry the start", null);
    }

    /**
     * Marks the mirror for seeding on the principal, and at the witness for operators and other
     * coordinators.
     *
     * @param principal a connection to the principal, autocommit on
     */
    static void mark(LockstepConfig config, WitnessStore witness, Connection principal, long epoch, String mirror,
                     String why) throws SQLException {
        SeedMark.mark(principal, epoch, true);
        if (witness != null) {
            try {
                witness.markMirrorForSeeding(config.partnership(), epoch, why, config.coordinatorId());
            } catch (SQLException e) {
                // The principal's mark rules; the witness's is for operators and other coordinators.
                LOG.warn("lockstep: partnership {}: recording at the witness that mirror {} needs seeding failed: {}",
                        config.partnership(), mirror, e.getMessage());
            }
        }
    }
}
