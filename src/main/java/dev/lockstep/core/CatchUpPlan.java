package dev.lockstep.core;

/**
 * How a mirror that is behind is brought back: by replaying the journal records it lacks, or by
 * seeding it with a copy of the principal's tables first. Also which of a returning node's
 * journal records are divergent: transactions the principal never held.
 */
public final class CatchUpPlan {

    private CatchUpPlan() {
    }

    /** How the mirror is brought back. */
    public enum Kind {
        /** Replay the journal records the mirror lacks. */
        CATCH_UP,
        /** Copy the principal's tables onto the mirror, then replay what committed after the copy. */
        SEED
    }

    /**
     * Decides how to bring the mirror back.
     *
     * @param markedForSeeding  the principal records that its mirror must be seeded (its journal
     *                          limit was exceeded, or the mirror diverged)
     * @param mirrorBlank       the mirror holds nothing of the partnership (a new, empty node)
     * @param principalBlank    the principal holds nothing either (a new partnership)
     * @param divergentRecords  how many of the mirror's records the principal lacks
     * @return the kind of catch-up
     */
    public static Kind decide(boolean markedForSeeding, boolean mirrorBlank, boolean principalBlank, int divergentRecords) {
        return decide(markedForSeeding, mirrorBlank, principalBlank, divergentRecords, false, false);
    }

    /**
     * As {@link #decide(boolean, boolean, boolean, int)}, also seeding a mirror whose journal
     * cannot be trusted to be completed by replay: one that once dropped its journal of an earlier
     * epoch at its limit while principal (what it committed alone then can no longer be compared),
     * and one whose journal stops below the newest record the principal deleted by trimming (see
     * {@link #belowTrim}): the records it lacks are gone.
     *
     * @param mirrorDroppedEarlierJournal the mirror dropped its journal of an epoch before the principal's
     * @param mirrorBelowPrincipalTrim    the mirror's journal stops below the newest record the principal trimmed
     */
    public static Kind decide(boolean markedForSeeding, boolean mirrorBlank, boolean principalBlank, int divergentRecords,
                              boolean mirrorDroppedEarlierJournal, boolean mirrorBelowPrincipalTrim) {
        if (markedForSeeding || divergentRecords > 0 || mirrorDroppedEarlierJournal || mirrorBelowPrincipalTrim
                || (mirrorBlank && !principalBlank)) {
            return Kind.SEED;
        }
        return Kind.CATCH_UP;
    }

    /**
     * Whether a mirror's journal stops below the newest record the principal deleted by trimming.
     * Retention deletes only records both nodes hold, so in normal operation the mirror holds that
     * record, or trimmed it itself; a mirror below it was restored from an older backup (or
     * otherwise lost records), and the records between its position and that one are gone from
     * the principal: replaying what is left would skip them silently.
     *
     * @param heldEpoch        epoch of the mirror's position: the greater of its newest record and its own trim position
     * @param heldSeq          sequence number of that position
     * @param lastTrimmedEpoch epoch of the newest record the principal deleted by trimming (0 if none)
     * @param lastTrimmedSeq   sequence number of that record
     * @return true when the mirror must be seeded rather than caught up
     */
    public static boolean belowTrim(long heldEpoch, long heldSeq, long lastTrimmedEpoch, long lastTrimmedSeq) {
        return heldEpoch < lastTrimmedEpoch || (heldEpoch == lastTrimmedEpoch && heldSeq < lastTrimmedSeq);
    }

    /**
     * Whether a record a returning node holds and the principal lacks is divergent. Only the
     * principal of an epoch writes records of it (I4): a record of the principal's own epoch came
     * from the principal. A record of an earlier epoch that the principal lacks, at or above the
     * position below which it trimmed what both held, is a transaction only the returning node
     * committed.
     *
     * @param recordEpoch     the record's epoch
     * @param recordSeq       the record's sequence number
     * @param principalEpoch  the principal's epoch
     * @param trimmedEpoch    epoch of the position below which the principal trimmed its journal
     * @param trimmedSeq      sequence number of that position
     * @return true when divergent
     */
    public static boolean divergent(long recordEpoch, long recordSeq, long principalEpoch, long trimmedEpoch, long trimmedSeq) {
        if (recordEpoch <= 0 || recordEpoch >= principalEpoch) {
            return false;
        }
        return recordEpoch > trimmedEpoch || (recordEpoch == trimmedEpoch && recordSeq >= trimmedSeq);
    }
}
