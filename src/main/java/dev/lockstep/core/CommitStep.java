package dev.lockstep.core;

/**
 * The points of the two-phase commit protocol at which an observer is told of progress, in the
 * order they happen. Fault-injection tests crash the coordinator at each of them.
 */
public enum CommitStep {
    /** The change set was drained into a journal record and the principal's transaction prepared. */
    PRINCIPAL_PREPARED,
    /** The mirror applied the change set and committed it, in one step: its commit decides the transaction. */
    MIRROR_COMMITTED,
    /** The principal committed its prepared transaction; the commit is acknowledged after this. */
    PRINCIPAL_COMMITTED
}
