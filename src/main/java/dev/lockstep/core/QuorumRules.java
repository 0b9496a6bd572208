package dev.lockstep.core;

/**
 * What a coordinator does, given the witness's record and what its failure detector sees: the
 * quorum table of DESIGN.md, with SQL Server's high-safety semantics. A principal serves only
 * while it has quorum with the mirror or the witness (I7); the mirror is promoted automatically
 * only when it was SYNCHRONIZED, the witness agrees, and no coordinator has reached the
 * principal within the partner timeout (I5).
 */
public final class QuorumRules {

    private QuorumRules() {
    }

    /** The coordinator's course. */
    public enum Action {
        /** Commits go to both nodes. */
        LOCKSTEP,
        /** The principal commits alone (mirror lost, suspended or catching up) while it keeps quorum. */
        RUN_EXPOSED,
        /** A partner is silent but not yet past the partner timeout: commits wait, nothing changes yet. */
        AWAIT_PARTNER_TIMEOUT,
        /** Promote the mirror: the next epoch, roles swapped. */
        FAILOVER,
        /** The principal is lost but the rules forbid promoting the mirror: only forced service can restore service. */
        NO_AUTOMATIC_FAILOVER,
        /** This coordinator cannot reach the principal, but another one did within the partner timeout. */
        CUT_OFF_FROM_PRINCIPAL,
        /** The principal has no quorum (or a role change is under way): it must not accept writes. */
        STOP_WRITES
    }

    /**
     * One coordinator's view.
     *
     * @param record                the witness's record (or the configured one when no witness is used)
     * @param principal             health of the principal
     * @param mirror                health of the mirror
     * @param witness               health of the witness (ignored in modes without one)
     * @param principalUnseenMillis by the witness's clock, how long since any coordinator last reached
     *                              the principal; {@link Long#MAX_VALUE} when never
     * @param quietMillis           how long the principal must have gone unseen before the mirror is
     *                              promoted: see {@link #quietMillis(boolean, long, long)}
     */
    public record Observation(PartnershipRecord record, PartnerHealth principal, PartnerHealth mirror,
                              PartnerHealth witness, long principalUnseenMillis, long quietMillis) {
    }

    /**
     * How long no coordinator may have reached the principal before its mirror is promoted. After
     * silence, the partner timeout (SQL Server's rule). After a hard failure (the principal's
     * host refused or reset the connection: nothing listens there) only three heartbeat intervals:
     * any coordinator that still reaches it says so at every heartbeat, and three intervals leave
     * room for a beat delayed by a busy machine (one and a half did not: a soak saw a coordinator
     * whose link alone was cut promote the mirror of a principal another coordinator still
     * reached). A SYNCHRONIZED principal commits nothing without its mirror, so promoting early
     * risks availability, never a second principal.
     *
     * @param hardFailure          whether the latest probe of the principal was refused or reset
     * @param heartbeatMillis      the heartbeat interval
     * @param partnerTimeoutMillis the partner timeout
     * @return the quiet period in milliseconds
     */
    public static long quietMillis(boolean hardFailure, long heartbeatMillis, long partnerTimeoutMillis) {
        return hardFailure ? Math.min(partnerTimeoutMillis, heartbeatMillis * 3) : partnerTimeoutMillis;
    }

    /**
     * Decides the coordinator's course.
     *
     * @param o what the coordinator sees
     * @return the action
     */
    public static Action decide(Observation o) {
        if (o.record().state() == MirroringState.PENDING_FAILOVER) {
            return Action.STOP_WRITES;
        }
        return switch (o.principal()) {
            case UP -> principalReachable(o);
            case SUSPECT -> Action.AWAIT_PARTNER_TIMEOUT;
            case FAILED -> principalLost(o);
        };
    }

    private static Action principalReachable(PartnerHealth mirror, boolean quorumWithoutMirror, boolean synchronous) {
        if (synchronous && mirror == PartnerHealth.UP) {
            return Action.LOCKSTEP;
        }
        if (synchronous && mirror == PartnerHealth.SUSPECT) {
            return Action.AWAIT_PARTNER_TIMEOUT;
        }
        return mirror == PartnerHealth.UP || quorumWithoutMirror ? Action.RUN_EXPOSED : Action.STOP_WRITES;
    }

    private static Action principalReachable(Observation o) {
        boolean synchronous = o.record().state() == MirroringState.SYNCHRONIZED
                && o.record().mode() != OperatingMode.HIGH_PERFORMANCE;
        return principalReachable(o.mirror(), quorumWithoutMirror(o), synchronous);
    }

    private static boolean quorumWithoutMirror(Observation o) {
        return !o.record().mode().usesWitness() || o.witness() == PartnerHealth.UP;
    }

    private static Action principalLost(Observation o) {
        if (!automaticFailoverAllowed(o)) {
            return Action.NO_AUTOMATIC_FAILOVER;
        }
        if (o.principalUnseenMillis() < o.quietMillis()) {
            return Action.CUT_OFF_FROM_PRINCIPAL;
        }
        return Action.FAILOVER;
    }

    /**
     * Whether the mirror could be promoted automatically should the principal be lost: the mode
     * provides it, the witness and the mirror are reachable, and the mirror is SYNCHRONIZED.
     *
     * @param o what the coordinator sees
     * @return true when automatic failover is armed
     */
    public static boolean automaticFailoverAllowed(Observation o) {
        return o.record().mode().failsOverAutomatically()
                && o.witness() == PartnerHealth.UP
                && o.mirror() == PartnerHealth.UP
                && o.record().state() == MirroringState.SYNCHRONIZED;
    }
}
