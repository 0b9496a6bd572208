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
        problems.addAll(problemsOf(partnership, principal, NodeRole.PRINCIPAL));
        problems.addAll(problemsOf(partnership, mirror, NodeRole.MIRROR));
        if (principal.epoch() != mirror.epoch()) {
            problems.add("nodes disagree on the epoch: " + principal.node() + " is at " + principal.epoch()
                    + ", " + mirror.node() + " at " + mirror.epoch());
        }
        return problems;
    }

    /**
     * The problems that forbid starting while the other partner cannot be reached: the witness's
     * record stands in for that partner's view, so the node must hold the role and the epoch the
     * record gives it.
     *
     * @param partnership the configured partnership name
     * @param present     the view of the partner that answered
     * @param role        the role the witness's record gives it
     * @param recordEpoch the epoch of the witness's record
     * @return human-readable problems, each naming node, role and epoch
     */
    public static List<String> problemsWithPartnerAway(String partnership, NodeView present, NodeRole role, long recordEpoch) {
        List<String> problems = new ArrayList<>(problemsOf(partnership, present, role));
        epochAgainstRecord(present, role, recordEpoch).ifPresent(problems::add);
        return problems;
    }

    /**
     * The problems that forbid starting with both partners and a witness: those of the pair, and
     * a principal at another epoch than the witness's record.
     *
     * @param partnership the configured partnership name
     * @param principal   the view of the principal the record names
     * @param mirror      the view of the mirror the record names
     * @param recordEpoch the epoch of the witness's record
     * @return human-readable problems, each naming node, role and epoch
     */
    public static List<String> problems(String partnership, NodeView principal, NodeView mirror, long recordEpoch) {
        List<String> problems = new ArrayList<>(problems(partnership, principal, mirror));
        epochAgainstRecord(principal, NodeRole.PRINCIPAL, recordEpoch).ifPresent(problems::add);
        return problems;
    }

    private static Optional<String> epochAgainstRecord(NodeView view, NodeRole role, long recordEpoch) {
        return view.epoch() == recordEpoch ? Optional.empty() : Optional.of("the witness records epoch " + recordEpoch + " but "
                + role.sqlName() + " " + view.node() + " is at epoch " + view.epoch());
    }

    private static List<String> problemsOf(String partnership, NodeView view, NodeRole role) {
        List<String> problems = new ArrayList<>();
        if (!view.partnership().equals(partnership)) {
            problems.add("node " + view.node() + " belongs to partnership " + view.partnership() + ", not " + partnership);
        }
        if (view.role() != role) {
            problems.add("node " + view.node() + " is configured as " + role.sqlName() + " but is " + view.role().sqlName()
                    + " at epoch " + view.epoch());
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

    /**
     * With a witness: whether the mirror the witness's record names was away while the partnership
     * moved to a later epoch (an old principal that returned while no coordinator ran, say). The
     * monitor demotes such a node when it sees it return; a start that finds it does the same.
     *
     * @param principal   the view of the principal the record names
     * @param mirror      the view of the mirror the record names
     * @param recordEpoch the epoch of the witness's record
     * @return true when the mirror must be made a mirror of the record's epoch first
     */
    public static boolean mirrorLeftBehind(NodeView principal, NodeView mirror, long recordEpoch) {
        return principal.role() == NodeRole.PRINCIPAL && principal.epoch() == recordEpoch && mirror.epoch() < recordEpoch;
    }

    /** The epoch to commit in when the views are consistent. */
    public static Optional<Long> agreedEpoch(String partnership, NodeView principal, NodeView mirror) {
        return problems(partnership, principal, mirror).isEmpty() ? Optional.of(principal.epoch()) : Optional.empty();
    }
}
