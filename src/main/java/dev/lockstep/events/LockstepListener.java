package dev.lockstep.events;

/**
 * Receives a partnership's {@link LockstepEvent}s, one at a time and in order, on a thread of the
 * coordinator's own. A listener that throws or is slow never holds up or breaks the coordinator:
 * its exception is logged and the next event is delivered; events beyond a bounded backlog are
 * dropped (and counted in the log).
 */
@FunctionalInterface
public interface LockstepListener {

    /**
     * Called for each event.
     *
     * @param event what happened
     */
    void on(LockstepEvent event);
}
