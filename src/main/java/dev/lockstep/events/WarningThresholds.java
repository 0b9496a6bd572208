package dev.lockstep.events;

import java.time.Duration;
import java.util.Objects;

/**
 * Limits above which the coordinator raises {@link LockstepEvent.ThresholdCrossed}, as SQL
 * Server's mirroring monitor does for its send queue, oldest unsent transaction and mirror commit
 * overhead. Validated at construction.
 *
 * @param sendQueueRecords   journal records the mirror may lack before a warning (at least 1)
 * @param oldestUnsentAge    age of the oldest record the mirror lacks before a warning (positive)
 * @param commitOverhead     mean time a commit may spend on the mirror, per heartbeat, before a warning (positive)
 */
public record WarningThresholds(long sendQueueRecords, Duration oldestUnsentAge, Duration commitOverhead) {

    /** 10,000 records, 60 s, 50 ms. */
    public static final WarningThresholds DEFAULTS = new WarningThresholds(10_000, Duration.ofSeconds(60), Duration.ofMillis(50));

    /** Checks every limit; the message names the limit, the rule and the value. */
    public WarningThresholds {
        Objects.requireNonNull(oldestUnsentAge, "oldestUnsentAge");
        Objects.requireNonNull(commitOverhead, "commitOverhead");
        if (sendQueueRecords < 1) {
            throw new IllegalArgumentException("warning threshold sendQueueRecords must be at least 1, was " + sendQueueRecords);
        }
        if (oldestUnsentAge.isNegative() || oldestUnsentAge.isZero()) {
            throw new IllegalArgumentException("warning threshold oldestUnsentAge must be positive, was " + oldestUnsentAge);
        }
        if (commitOverhead.isNegative() || commitOverhead.isZero()) {
            throw new IllegalArgumentException("warning threshold commitOverhead must be positive, was " + commitOverhead);
        }
    }
}
