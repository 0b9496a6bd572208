package dev.lockstep.commit;

import dev.lockstep.core.CommitStep;

/**
 * Told of each step of the two-phase commit of every mirrored transaction, on the committing
 * thread. Used for fault injection: an observer that throws {@link SimulatedCrash} makes the
 * coordinator stop at that step as if its process had died, leaving the nodes as they are.
 */
@FunctionalInterface
public interface CommitObserver {

    /** An observer that does nothing. */
    CommitObserver NONE = (step, gid) -> { };

    /**
     * Called once a step has completed.
     *
     * @param step the step
     * @param gid  the global transaction id of the transaction
     */
    void stepDone(CommitStep step, String gid);

    /** Thrown by an observer to simulate a coordinator crash at a step. */
    final class SimulatedCrash extends RuntimeException {
        private static final long serialVersionUID = 1L;

        public SimulatedCrash(String message) {
            super(message);
        }
    }
}
