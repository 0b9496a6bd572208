package dev.lockstep;

/**
 * Tells the monitor that a node's server restarted between two of its passes, from the start time
 * the node's probes read: a restart faster than the partner timeout leaves its health UP, yet the
 * node may have come back as an older copy of itself. Follows one node at a time; watching
 * another (the roles changed) starts afresh.
 */
final class RestartWatch {

    private String node;
    private String startedAt;
    private boolean checkDue;

    /**
     * Notes the node's server start time as its probes last read it.
     *
     * @param node      the node watched
     * @param startedAt its server's start time; null before it first answered
     */
    void observe(String node, String startedAt) {
        if (startedAt == null) {
            return;
        }
        if (!node.equals(this.node)) {
            this.node = node;
            this.startedAt = startedAt;
            checkDue = false;
        } else if (!startedAt.equals(this.startedAt)) {
            this.startedAt = startedAt;
            checkDue = true;
        }
    }

    /** Whether the node restarted since it was last checked. */
    boolean checkDue() {
        return checkDue;
    }

    /** The server's start time as last observed. */
    String startedAt() {
        return startedAt;
    }

    /** The node was checked after its latest restart. */
    void checked() {
        checkDue = false;
    }
}
