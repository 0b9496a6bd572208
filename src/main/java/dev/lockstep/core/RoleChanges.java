package dev.lockstep.core;

/**
 * The role changes a partnership record allows, as SQL Server allows them. Each returns the next
 * record (a compare-and-set at the witness then makes it current) or refuses with the reason.
 */
public final class RoleChanges {

    private RoleChanges() {
    }

    /**
     * The outcome of a requested change: the next record, or a refusal.
     *
     * @param next    the record to install, or null when refused
     * @param refusal why the change is refused, or null when allowed
     */
    public record Result(PartnershipRecord next, String refusal) {

        static Result to(PartnershipRecord next) {
            return new Result(next, null);
        }

        static Result refused(PartnershipRecord current, String why) {
            return new Result(null, "partnership " + current.name() + " at epoch " + current.epoch() + " ("
                    + current.state() + ", principal " + current.principal() + "): " + why);
        }

        /** Whether the change is allowed. */
        public boolean allowed() {
            return next != null;
        }
    }

    /** The mirror stopped answering: the principal continues exposed. */
    public static Result mirrorLost(PartnershipRecord r) {
        if (r.state() != MirroringState.SYNCHRONIZED && r.state() != MirroringState.SYNCHRONIZING) {
            return Result.refused(r, "the mirror is not mirroring, so it cannot be lost");
        }
        return Result.to(r.withState(MirroringState.DISCONNECTED));
    }

    /**
     * Automatic failover: the mirror becomes principal at the next epoch; the old principal is
     * gone, so the new one runs exposed until it returns and catches up.
     *
     * @param r        the current record
     * @param decision what {@link QuorumRules#decide} said
     */
    public static Result automaticFailover(PartnershipRecord r, QuorumRules.Action decision) {
        if (decision != QuorumRules.Action.FAILOVER) {
            return Result.refused(r, "automatic failover needs the quorum rules to call for it, they say " + decision);
        }
        return Result.to(r.swapped(MirroringState.DISCONNECTED));
    }

    /**
     * Planned failover, with no loss: only while SYNCHRONIZED; the old principal continues as a
     * synchronized mirror. Naming the current principal is refused, as there is nothing to do.
     *
     * @param r            the current record
     * @param newPrincipal the node to become principal
     */
    public static Result manualFailover(PartnershipRecord r, String newPrincipal) {
        if (r.roleOf(newPrincipal) == null) {
            return Result.refused(r, newPrincipal + " is not a partner");
        }
        if (r.principal().equals(newPrincipal)) {
            return Result.refused(r, newPrincipal + " is already the principal");
        }
        if (r.state() != MirroringState.SYNCHRONIZED) {
            return Result.refused(r, "a planned failover needs the partnership SYNCHRONIZED, so that nothing is lost");
        }
        return Result.to(r.swapped(MirroringState.SYNCHRONIZED));
    }

    /**
     * Forced service, accepting data loss: only when the principal is lost and, with a witness,
     * only when the witness is reachable and has not seen the principal within the partner
     * timeout. The partnership is left SUSPENDED.
     *
     * @param r                     the current record
     * @param allowDataLoss         the operator's explicit consent
     * @param principal             the principal's health as the mirror's side sees it
     * @param witness               the witness's health as the mirror's side sees it
     * @param principalUnseenMillis by the witness's clock, since a coordinator last reached the principal
     * @param partnerTimeoutMillis  the partner timeout
     */
    public static Result forceService(PartnershipRecord r, boolean allowDataLoss, PartnerHealth principal,
                                      PartnerHealth witness, long principalUnseenMillis, long partnerTimeoutMillis) {
        if (!allowDataLoss) {
            return Result.refused(r, "forced service may lose committed transactions; it needs explicit consent (allowDataLoss)");
        }
        if (principal != PartnerHealth.FAILED) {
            return Result.refused(r, "the principal is " + principal + ", not lost; use a planned failover instead");
        }
        if (r.mode().usesWitness() && witness != PartnerHealth.UP) {
            return Result.refused(r, "the witness is configured but " + witness + " from the mirror's side,"
                    + " so it cannot confirm that the principal is gone");
        }
        if (r.mode().usesWitness() && principalUnseenMillis < partnerTimeoutMillis) {
            return Result.refused(r, "the witness saw a coordinator reach the principal " + principalUnseenMillis
                    + " ms ago, within the partner timeout of " + partnerTimeoutMillis + " ms; its lease may still be valid");
        }
        return Result.to(r.swapped(MirroringState.SUSPENDED));
    }

    /** Suspend mirroring: the principal runs exposed and keeps its journal. */
    public static Result suspend(PartnershipRecord r) {
        if (r.state() == MirroringState.SUSPENDED || r.state() == MirroringState.PENDING_FAILOVER) {
            return Result.refused(r, "cannot suspend from " + r.state());
        }
        return Result.to(r.withState(MirroringState.SUSPENDED));
    }

    /** Resume mirroring: the mirror catches up from its position. */
    public static Result resume(PartnershipRecord r) {
        if (r.state() != MirroringState.SUSPENDED && r.state() != MirroringState.DISCONNECTED) {
            return Result.refused(r, "only a SUSPENDED or DISCONNECTED partnership resumes");
        }
        return Result.to(r.withState(MirroringState.SYNCHRONIZING));
    }

    /** Catch-up reached the principal's position. */
    public static Result caughtUp(PartnershipRecord r) {
        if (r.state() != MirroringState.SYNCHRONIZING) {
            return Result.refused(r, "only a SYNCHRONIZING partnership becomes SYNCHRONIZED");
        }
        return Result.to(r.withState(MirroringState.SYNCHRONIZED));
    }
}
