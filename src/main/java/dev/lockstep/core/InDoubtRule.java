package dev.lockstep.core;

/**
 * Settles a Lockstep transaction that is prepared on one node. The principal prepares first and
 * the mirror then commits in one step (or, for a transaction left by an earlier protocol version,
 * prepares too), so "committed on the other node" and "prepared on the other node" both mean it
 * must commit; "absent from the other node" means the mirror never committed it (in-doubt
 * resolution bars its id there first, so it never will) and it must roll back.
 */
public final class InDoubtRule {

    private InDoubtRule() {
    }

    /** What the other node knows of the transaction. */
    public enum Peer {
        /** Prepared there too. */
        PREPARED,
        /** Committed there: its journal record is visible. */
        COMMITTED,
        /** Neither prepared nor committed there. */
        ABSENT,
        /** The other node could not be asked. */
        UNREACHABLE,
        /**
         * The other node, the mirror, could not be asked, and the principal may commit alone: the
         * witness records the mirror DISCONNECTED and the principal holds its lease. The
         * transaction commits on the principal as an exposed commit would; the mirror either
         * holds it too or receives it with catch-up, and can only be promoted by forced service.
         */
        WRITTEN_OFF
    }

    /** What to do with the local prepared transaction. */
    public enum Outcome {
        COMMIT, ROLLBACK,
        /** Leave it for now: its owner may still be working on it, or the peer cannot be asked. */
        WAIT
    }

    /** Who may still be working on the transaction. */
    public enum Owner {
        /** A live commit of this coordinator. */
        ACTIVE,
        /**
         * This coordinator, whose commit gave up on it (the link to the mirror broke, say): no
         * commit works on it any longer and none ever will, so it needs no grace.
         */
        ABANDONED_HERE,
        /** Another coordinator, or an earlier, crashed run of this one: it may still be working on it. */
        UNKNOWN
    }

    /**
     * Decides the fate of one prepared transaction.
     *
     * @param peer           what the other node says about it
     * @param ownerActive    whether a live commit of this coordinator is still working on it
     * @param ageMillis      how long ago it was prepared, by the preparing node's clock
     * @param graceMillis    how old a transaction of another (or a crashed) owner must be before
     *                       it is settled; longer than any commit can take
     * @return the outcome
     */
    public static Outcome decide(Peer peer, boolean ownerActive, long ageMillis, long graceMillis) {
        return decide(peer, ownerActive ? Owner.ACTIVE : Owner.UNKNOWN, ageMillis, graceMillis);
    }

    /**
     * Decides the fate of one prepared transaction.
     *
     * @param peer        what the other node says about it
     * @param owner       who may still be working on it
     * @param ageMillis   how long ago it was prepared, by the preparing node's clock
     * @param graceMillis how old a transaction of an {@link Owner#UNKNOWN} owner must be before it
     *                    is settled; longer than any commit can take
     * @return the outcome
     */
    public static Outcome decide(Peer peer, Owner owner, long ageMillis, long graceMillis) {
        if (owner == Owner.ACTIVE) {
            return Outcome.WAIT;
        }
        if (peer == Peer.COMMITTED) {
            return Outcome.COMMIT;
        }
        if (peer == Peer.UNREACHABLE || (owner == Owner.UNKNOWN && ageMillis < graceMillis)) {
            return Outcome.WAIT;
        }
        return peer == Peer.PREPARED || peer == Peer.WRITTEN_OFF ? Outcome.COMMIT : Outcome.ROLLBACK;
    }
}
