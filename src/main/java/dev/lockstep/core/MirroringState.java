package dev.lockstep.core;

/** The mirroring state of a partnership, with SQL Server's names and meanings. */
public enum MirroringState {
    /** The mirror is catching up with the principal; automatic failover is not possible. */
    SYNCHRONIZING,
    /** The mirror holds every committed transaction; commits are acknowledged by both nodes. */
    SYNCHRONIZED,
    /** Mirroring was stopped by an operator or by forced service; the principal runs exposed. */
    SUSPENDED,
    /** The partners lost each other; the principal, if it has quorum, runs exposed. */
    DISCONNECTED,
    /** A role change is under way. */
    PENDING_FAILOVER
}
