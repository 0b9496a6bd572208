package dev.lockstep.core;

/**
 * The lease under which an exposed principal commits alone. A coordinator holds it from the
 * moment it sent a successful "principal seen" write to the witness, for half the partner
 * timeout; a failover or forced service waits until the witness has seen no such write for the
 * whole partner timeout. The lease is measured from the send (before the witness's timestamp)
 * on the coordinator's monotonic clock, so it always ends before anyone may promote the mirror,
 * unless the two clocks' rates differ by half.
 */
public final class ExposedLease {

    private ExposedLease() {
    }

    /** How long a lease lasts. */
    public static long durationMillis(long partnerTimeoutMillis) {
        return partnerTimeoutMillis / 2;
    }

    /**
     * Whether a lease still holds.
     *
     * @param sentNanos            monotonic time at which the successful witness write was sent
     * @param nowNanos             monotonic time now
     * @param partnerTimeoutMillis the partner timeout
     * @return true while the principal may commit alone
     */
    public static boolean holds(long sentNanos, long nowNanos, long partnerTimeoutMillis) {
        return nowNanos - sentNanos < durationMillis(partnerTimeoutMillis) * 1_000_000L;
    }
}
