package dev.lockstep;

import dev.lockstep.events.LockstepEvent.FailoverKind;

import java.time.Duration;
import java.util.Map;

/**
 * What this coordinator has counted and last measured of its partnership, the figures SQL
 * Server's mirroring performance counters show. Counters run from the coordinator's start;
 * measurements are as of the last heartbeat.
 *
 * @param transactionsMirrored   transactions committed in lockstep on both nodes
 * @param transactionsAlone      transactions the principal committed alone (exposed), kept in its journal
 * @param mirrorAppliedRecords   journal records applied on the mirror: lockstep commits plus catch-up replay ("redo")
 * @param inDoubtCommitted       prepared transactions in-doubt resolution committed
 * @param inDoubtRolledBack      prepared transactions in-doubt resolution rolled back
 * @param failovers              role changes this coordinator made or followed, by kind
 * @param lastFailover           duration of the last role change (see {@link dev.lockstep.events.LockstepEvent.Failover}), or null
 * @param sendQueueRecords       journal records the mirror lacks (0 while SYNCHRONIZED)
 * @param sendQueueBytes         their size in bytes
 * @param oldestUnsentAge        age of the oldest of them (zero when none)
 * @param catchUpReplayed        records the catch-up under way (or the last one that replayed any) has replayed
 * @param catchUpEstimate        estimated time left for the catch-up under way at the current replay rate, or null
 * @param meanCommitOverheadMillis mean time a commit spent on the mirror over the last heartbeat
 */
public record MirroringStatistics(long transactionsMirrored, long transactionsAlone, long mirrorAppliedRecords,
                                  long inDoubtCommitted, long inDoubtRolledBack, Map<FailoverKind, Long> failovers,
                                  Duration lastFailover, long sendQueueRecords, long sendQueueBytes, Duration oldestUnsentAge,
                                  long catchUpReplayed, Duration catchUpEstimate, double meanCommitOverheadMillis) {

    /** Copies the map. */
    public MirroringStatistics {
        failovers = Map.copyOf(failovers);
    }
}
