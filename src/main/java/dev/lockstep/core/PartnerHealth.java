package dev.lockstep.core;

/**
 * What a coordinator's failure detector says about one node (partner or witness). A hard
 * failure (connection refused or reset) counts as {@link #FAILED} at once; silence counts as
 * {@link #SUSPECT} until the partner timeout has passed, then as {@link #FAILED}.
 */
public enum PartnerHealth {
    /** Answered its last probe within the deadline. */
    UP,
    /** Silent, but for less than the partner timeout. */
    SUSPECT,
    /** Refused or reset the connection, or silent for the partner timeout or longer. */
    FAILED;

    /**
     * Classifies a node from its probe history.
     *
     * @param lastProbeSucceeded  whether the most recent finished probe got an answer in time
     * @param hardFailure         whether the most recent failure was a refused or reset connection
     * @param silentMillis        how long since the last answered probe
     * @param partnerTimeoutMillis the partner timeout
     * @return the health
     */
    public static PartnerHealth of(boolean lastProbeSucceeded, boolean hardFailure, long silentMillis, long partnerTimeoutMillis) {
        // Silence counts even while the latest finished probe succeeded: a probe of a frozen node
        // hangs until its deadline, and until then the last result says nothing about now.
        if (silentMillis >= partnerTimeoutMillis) {
            return FAILED;
        }
        if (lastProbeSucceeded) {
            return UP;
        }
        return hardFailure ? FAILED : SUSPECT;
    }
}
