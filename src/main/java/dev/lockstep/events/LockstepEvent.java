package dev.lockstep.events;

import dev.lockstep.CatchUpResult;
import dev.lockstep.core.MirroringState;
import dev.lockstep.core.PartnerHealth;

import java.time.Duration;
import java.time.Instant;

/**
 * Something that happened to a partnership, as SQL Server's database mirroring monitor reports
 * it: a state change, a failover, a node lost or found, a warning threshold crossed. Delivered to
 * {@link LockstepListener}s in the order the coordinator saw them.
 */
public sealed interface LockstepEvent {

    /** The partnership it happened to. */
    String partnership();

    /** When the coordinator saw it (its injected clock). */
    Instant at();

    /**
     * The mirroring state changed (as the witness, or without one the principal, records it).
     *
     * @param partnership partnership
     * @param at          when
     * @param epoch       the epoch the state belongs to
     * @param from        the state before
     * @param to          the state now
     */
    record MirroringStateChanged(String partnership, Instant at, long epoch, MirroringState from, MirroringState to)
            implements LockstepEvent {
    }

    /**
     * The roles changed: the partnership moved to a new epoch and this coordinator follows it.
     *
     * @param partnership  partnership
     * @param at           when this coordinator adopted the new epoch
     * @param kind         how the change came about
     * @param fromEpoch    the epoch before
     * @param toEpoch      the epoch now
     * @param principal    the principal now
     * @param mirror       the mirror now
     * @param duration     automatic: from the last answer of the old principal to the adoption; planned
     *                     or forced: how long the call took; followed: zero (another coordinator timed it)
     */
    record Failover(String partnership, Instant at, FailoverKind kind, long fromEpoch, long toEpoch, String principal,
                    String mirror, Duration duration) implements LockstepEvent {
    }

    /**
     * A node's health, as this coordinator's failure detector sees it, changed.
     *
     * @param partnership partnership
     * @param at          when
     * @param node        node name (a partner or the witness)
     * @param from        health before
     * @param to          health now
     */
    record NodeHealthChanged(String partnership, Instant at, String node, PartnerHealth from, PartnerHealth to)
            implements LockstepEvent {
    }

    /**
     * The mirror came back as another incarnation while the partnership was SYNCHRONIZED: its
     * server restarted, however briefly it was away, or its database was replaced. This
     * coordinator compared its journal with the principal's, as a put-back copy lacks records.
     *
     * @param partnership partnership
     * @param at          when the comparison ended
     * @param mirror      the mirror's node name
     * @param incarnation the mirror's server start time and database, as its probe read them
     * @param finding     what the comparison found, and what follows
     */
    record MirrorRestarted(String partnership, Instant at, String mirror, String incarnation, MirrorFinding finding)
            implements LockstepEvent {
    }

    /**
     * The principal came back as another incarnation while SYNCHRONIZED and lacks commits its
     * mirror holds (put back to an older copy): this coordinator takes no more writes on it at
     * the epoch. Stopping it makes the coordinators fail over to the mirror, which holds them.
     *
     * @param partnership partnership
     * @param at          when the comparison ended
     * @param principal   the principal's node name
     * @param epoch       the epoch in which it takes no writes
     * @param reason      what it lacks, and the remedy
     */
    record PrincipalLostCommits(String partnership, Instant at, String principal, long epoch, String reason)
            implements LockstepEvent {
    }

    /** What comparing a mirror's journal with the principal's found. */
    enum MirrorFinding {
        /** It holds every record the principal holds: lockstep goes on. */
        HOLDS_EVERY_RECORD,
        /** It stopped short of the principal's newest record: recorded behind, catch-up replays the rest. */
        BEHIND_CATCHING_UP,
        /** It holds later commits on top of a gap: marked for seeding and recorded behind. */
        GAP_RESEEDING
    }

    /**
     * This coordinator brought a mirror that was behind back to SYNCHRONIZED.
     *
     * @param partnership partnership
     * @param at          when
     * @param result      records replayed, passes and the cut-over pause
     */
    record CatchUpFinished(String partnership, Instant at, CatchUpResult result) implements LockstepEvent {
    }

    /**
     * A catch-up or seeding of the mirror by this coordinator failed; it is retried a few
     * heartbeats later. Raised on each failed attempt, so that a mirror kept from catching up by
     * something that needs an operator (a table that blocks seeding, a full disk) is noticed.
     * Some failures are routine and clear by themselves: transactions in doubt that resolution is
     * about to settle, a principal too busy for the cut-over, the partnership changing under the
     * catch-up (a suspend, say). Those are marked {@code transientFailure}; an alert can wait until
     * {@code failuresInARow} shows that they persist.
     *
     * @param partnership      partnership
     * @param at               when
     * @param mirror           the mirror node
     * @param sqlState         the failure's SQLSTATE, or null
     * @param message          the failure, naming the node and what was refused
     * @param transientFailure whether the failure is of a kind that clears without an operator
     * @param failuresInARow   failed attempts since this coordinator's last catch-up that finished or found
     *                         nothing to do, this one included
     */
    record CatchUpFailed(String partnership, Instant at, String mirror, String sqlState, String message,
                         boolean transientFailure, int failuresInARow) implements LockstepEvent {
    }

    /**
     * In-doubt resolution settled prepared transactions a failure had left behind.
     *
     * @param partnership partnership
     * @param at          when
     * @param committed   transactions committed
     * @param rolledBack  transactions rolled back
     */
    record InDoubtResolved(String partnership, Instant at, int committed, int rolledBack) implements LockstepEvent {
    }

    /**
     * A warning threshold was crossed, upwards ({@code exceeded}) or back below it.
     *
     * @param partnership partnership
     * @param at          when
     * @param threshold   which threshold
     * @param value       the measured value (records, seconds or milliseconds, as the threshold says)
     * @param limit       the configured limit, in the same unit
     * @param exceeded    true when the value went above the limit, false when it came back below
     */
    record ThresholdCrossed(String partnership, Instant at, Threshold threshold, double value, double limit, boolean exceeded)
            implements LockstepEvent {
    }

    /**
     * The journal the principal keeps for an absent mirror neared its limit (a warning, from
     * 80 %), or passed it: the mirror is then marked for seeding and the journal trimmed.
     *
     * @param partnership partnership
     * @param at          when
     * @param usage       the journal's size and age against the configured limits
     * @param exceeded    false for the warning, true once past the limit
     */
    record JournalLimit(String partnership, Instant at, dev.lockstep.JournalUsage usage, boolean exceeded) implements LockstepEvent {
    }

    /** How a role change came about. */
    enum FailoverKind {
        /** This coordinator promoted the mirror after losing the principal, under the witness's quorum. */
        AUTOMATIC,
        /** An operator asked for it ({@code Partnership.failover}); no loss. */
        PLANNED,
        /** An operator forced service on the mirror, allowing data loss. */
        FORCED,
        /** Another coordinator changed the roles; this one followed the witness's record. */
        FOLLOWED
    }

    /** The warning thresholds of SQL Server's mirroring monitor that Lockstep raises. */
    enum Threshold {
        /** Journal records the mirror lacks (the send queue); the value is a record count. */
        SEND_QUEUE_RECORDS,
        /** Age of the oldest journal record the mirror lacks; the value is in seconds. */
        OLDEST_UNSENT_AGE,
        /** Mean time a commit spent on the mirror over the last heartbeat; the value is in milliseconds. */
        COMMIT_OVERHEAD
    }
}
