package dev.lockstep.core;

/** How a partnership commits and fails over. */
public enum OperatingMode {
    /** Synchronous commits and a witness: the mirror is promoted automatically when the principal is lost. */
    HIGH_SAFETY_AUTOMATIC_FAILOVER,
    /** Synchronous commits without a witness: failover is manual. */
    HIGH_SAFETY,
    /** Asynchronous commits: the mirror may lag; failover only as forced service. */
    HIGH_PERFORMANCE;

    /** Whether this mode promotes the mirror without an operator. */
    public boolean failsOverAutomatically() {
        return this == HIGH_SAFETY_AUTOMATIC_FAILOVER;
    }

    /** Whether a witness takes part in quorum. */
    public boolean usesWitness() {
        return this == HIGH_SAFETY_AUTOMATIC_FAILOVER;
    }
}
