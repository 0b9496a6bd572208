package dev.lockstep.commit;

/**
 * Told of every commit that changed something mirrored, once it is acknowledged: how long the
 * commit took and how much of that it spent on the mirror (the mirroring overhead). Called on the
 * committing thread; must be cheap and must not throw.
 */
@FunctionalInterface
public interface CommitTimings {

    /** Timings that go nowhere. */
    CommitTimings NONE = (alone, commitNanos, mirrorNanos) -> { };

    /**
     * @param alone       true when the principal committed alone (exposed), false in lockstep
     * @param commitNanos from the application's {@code commit()} to its return
     * @param mirrorNanos the part spent applying, preparing and committing on the mirror (0 when alone)
     */
    void committed(boolean alone, long commitNanos, long mirrorNanos);
}
