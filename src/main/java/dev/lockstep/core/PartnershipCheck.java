package dev.lockstep.core;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Decides whether two nodes' views agree well enough for a coordinator to start committing in
 * lockstep, and at which epoch.
 */
public final class PartnershipCheck {

    private PartnershipCheck() {
    }

    /**
     * The problems that forbid starting; empty when the pair is consistent.
     *
     * @param partnership the configured partnership name
     * @param principal   the view of the node configured as principal
     * @param mirror      the view of the node configured as mirror
     * @return human-readable problems, each naming node, role and epoch
     */
    public static List<String> problems(String partnership, NodeView principal, NodeView mirror) {
        List<String> problems = new ArrayList<>();
        for (NodeView v : List.of(principal, mirror)) {
            if (!v.partnership().equals(partnership)) {
                problems.add("node " + v.node() + " belongs to partnership " + v.partnership()
                        + ", not " + partnership);
            }
        }
        if (principal.role() != NodeRole.PRINCIPAL) {
            problems.add("node " + principal.node() + " is configured as principal but is " + principal.role().sqlName()
                    + " at epoch " + principal.epoch());
        }
        if (mirror.role() != NodeRole.MIRROR) {
            problems.add("node " + mirror.node() + " is configured as mirror but is " + mirror.role().sqlName()
                    + " at epoch " + mirror.epoch());
        }
        if (principal.epoch() != mirror.epoch()) {
            problems.add("nodes disagree on the epoch: " + principal.node() + " is at " + principal.epoch()
                    + ", " + mirror.node() + " at " + mirror.epoch());
        }
        return problems;
    }

    /**
     * Without a witness, the nodes themselves say who serves: the principal of the highest epoch.
     * After a forced service the configured mirror may be that node; the configured principal,
     * if it still says principal at a lower epoch, is a returning old principal to demote.
     *
     * @param configuredPrincipal the view of the node configured as principal
     * @param configuredMirror    the view of the node configured as mirror
     * @return true when the configured mirror serves as principal
     */
    public static boolean mirrorServesWithoutWitness(NodeView configuredPrincipal, NodeView configuredMirror) {
        return configuredMirror.role() == NodeRole.PRINCIPAL
                && (configuredPrincipal.role() != NodeRole.PRINCIPAL || configuredMirror.epoch() > configuredPrincipal.epoch());
    }

    /**
     * Whether the node configured as mirror is an old principal left behind by a forced service:
     * still principal, at a lower epoch than the serving principal.
     *
     * @param serving the serving principal's view
     * @param other   the other node's view
     * @return true when {@code other} must be demoted before the partnership starts
     */
    public static boolean isLeftBehindPrincipal(NodeView serving, NodeView other) {
        return other.role() == NodeRole.PRINCIPAL && other.epoch() < serving.epoch();
    }

    /** The epoch to commit in when the views are consistent. */
    public static Optional<Long> agreedEpoch(String partnership, NodeView principal, NodeView mirror) {
        return problems(partnership, principal, mirror).isEmpty() ? Optional.of(principal.epoch()) : Optional.empty();
    }
}
