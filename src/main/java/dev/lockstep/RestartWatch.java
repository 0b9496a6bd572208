package dev.lockstep;

/**
 * Tells the monitor that a node came back as another incarnation (its server restarted, or its
 * database was replaced) since it was last checked, from what the node's probes read: a restart
 * faster than the partner timeout leaves its health UP, yet the node may be an older copy of
 * itself. Follows one node at a time; watching another (the roles changed) starts afresh. Its
 * methods may be called from the monitor and from the thread that runs the check.
 */
final class RestartWatch {

    private String node;
    private String incarnation;
    private String checking;
    private boolean checkDue;

    /**
     * Notes the node's incarnation as its probes last read it.
     *
     * @param node        the node watched
     * @param incarnation what its probes read; null before it first answered
     */
    synchronized void observe(String node, String incarnation) {
        if (incarnation == null) {
            return;
        }
        if (!node.equals(this.node)) {
            this.node = node;
            this.incarnation = incarnation;
            checking = null;
            checkDue = false;
        } else if (!incarnation.equals(this.incarnation)) {
            this.incarnation = incarnation;
            checkDue = true;
        }
    }

    /** Whether the node came back as another incarnation that no check has cleared yet. */
    synchronized boolean checkDue() {
        return checkDue;
    }

    /**
     * Starts a check of the current incarnation, unless one is running.
     *
     * @return the incarnation to check; null when a check is running already or none is due
     */
    synchronized String startCheck() {
        if (!checkDue || checking != null) {
            return null;
        }
        checking = incarnation;
        return checking;
    }

    /**
     * A check ended.
     *
     * @param checked    the incarnation it checked
     * @param conclusive whether it ran to its end; otherwise the check stays due
     */
    synchronized void checkEnded(String checked, boolean conclusive) {
        if (checked.equals(checking)) {
            checking = null;
        }
        if (conclusive && checked.equals(incarnation)) {
            checkDue = false;
        }
    }

    /**
     * Notes the node's incarnation, and says whether to compare its journal now.
     *
     * @param node           the node watched
     * @param incarnation    what its probes read; null before it first answered
     * @param synchronizedNow whether the partnership is SYNCHRONIZED: otherwise the mirror is behind
     *                       already and no comparison is needed (nor possible, for a principal)
     * @param bothUp         whether both partners answer, so that the comparison can run
     * @return the incarnation to compare now; null when none is due, one runs, or it must wait
     */
    synchronized String due(String node, String incarnation, boolean synchronizedNow, boolean bothUp) {
        observe(node, incarnation);
        if (checkDue && !synchronizedNow) {
            checkDue = false;
        }
        return bothUp ? startCheck() : null;
    }
}
