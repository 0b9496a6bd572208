package dev.lockstep;

import dev.lockstep.commit.NodeRoleChange;
import dev.lockstep.commit.PrincipalState;
import dev.lockstep.core.MirroringState;
import dev.lockstep.core.PartnerHealth;
import dev.lockstep.core.PartnershipRecord;
import dev.lockstep.core.QuorumRules;
import dev.lockstep.core.RoleChanges;
import dev.lockstep.jdbc.SqlStates;
import dev.lockstep.witness.WitnessStore;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.time.Duration;
import java.util.Properties;

/**
 * Role changes carried out on the witness and the nodes: the automatic promotion of a mirror
 * (I5) and the demotion of a principal that returns after a failover.
 *
 * <p>A promotion is three steps, each safe to repeat: the witness record moves to
 * PENDING_FAILOVER, in the same witness transaction that checks that no coordinator reached the
 * principal within the partner timeout; the mirror commits the transactions it holds prepared
 * and takes the next epoch as principal; the witness record moves to that epoch with the roles
 * swapped. Coordinators of the old epoch are refused by both nodes and by the witness from then on.
 */
public final class Failover {

    private Failover() {
    }

    /**
     * Promotes the mirror after the principal was lost.
     *
     * @param witness         the witness
     * @param partnership     the partnership
     * @param mirror          the mirror node
     * @param principalHealth the principal's health as the caller's failure detector sees it
     * @param quiet           how long no coordinator may have reached the principal
     *                        ({@link QuorumRules#quietMillis}: the partner timeout, or less after a hard failure)
     * @param callTimeout     deadline of each call to a node
     * @param actor           who promotes, for the witness history
     * @return the new record
     * @throws SQLException 55000 when the quorum rules forbid the promotion (the message says why);
     *                      40001 when another coordinator changed the record first or the
     *                      principal was seen meanwhile
     */
    public static PartnershipRecord promoteMirror(WitnessStore witness, String partnership, NodeConfig mirror,
                                                  PartnerHealth principalHealth, Duration quiet,
                                                  Duration callTimeout, String actor) throws SQLException {
        WitnessStore.Sighting seen = witness.read(partnership);
        PartnershipRecord current = seen.record();
        requireMirror(current, mirror);
        QuorumRules.Action decision = QuorumRules.decide(new QuorumRules.Observation(current, principalHealth,
                PartnerHealth.UP, PartnerHealth.UP, seen.principalUnseenMillis(), quiet.toMillis()));
        RoleChanges.Result change = RoleChanges.automaticFailover(current, decision);
        if (!change.allowed()) {
            throw SqlStates.error(SqlStates.NOT_READY, "lockstep: no automatic failover: " + change.refusal(), null);
        }
        return promote(witness, current, change.next(), mirror, quiet, callTimeout, actor,
                "principal " + current.principal() + " lost", "mirror " + mirror.name() + " promoted to principal");
    }

    /**
     * The three steps of an unplanned promotion: PENDING_FAILOVER at the witness (only if nobody
     * reached the principal for the partner timeout), the mirror takes the new epoch, the
     * witness records the new roles.
     */
    private static PartnershipRecord promote(WitnessStore witness, PartnershipRecord current, PartnershipRecord next,
                                             NodeConfig mirror, Duration quiet, Duration callTimeout, String actor,
                                             String why, String done) throws SQLException {
        PartnershipRecord pending = current.withState(MirroringState.PENDING_FAILOVER);
        if (!witness.transition(current, pending, quiet.toMillis(), why, actor, next.state())) {
            throw SqlStates.error(SqlStates.SERIALIZATION_FAILURE, "lockstep: partnership " + current.name()
                    + " changed at the witness, or its principal was seen, before the promotion; now: "
                    + witness.read(current.name()), null);
        }
        try (Connection c = connect(mirror, callTimeout)) {
            takePrincipalRole(c, current.name(), mirror.name(), next, callTimeout);
        }
        witness.transition(pending, next, null, done, actor);
        return next;
    }

    private static void requireMirror(PartnershipRecord current, NodeConfig mirror) throws SQLException {
        if (!current.mirror().equals(mirror.name())) {
            throw SqlStates.error(SqlStates.NOT_READY, "lockstep: node " + mirror.name() + " is not the mirror of partnership "
                    + current.name() + " at epoch " + current.epoch() + " (the mirror is " + current.mirror() + ")", null);
        }
    }

    /**
     * Forced service, accepting data loss: the mirror becomes principal although it may lack
     * transactions the lost principal committed while it ran exposed. Only when the principal is
     * unreachable and, with a witness, only once the witness has seen no coordinator reach it
     * for the partner timeout (its lease has run out). The partnership is left SUSPENDED.
     *
     * @param witness         the witness
     * @param partnership     the partnership
     * @param mirror          the mirror node
     * @param allowDataLoss   the operator's explicit consent
     * @param principalHealth the principal's health as the caller sees it
     * @param partnerTimeout  the partner timeout
     * @param callTimeout     deadline of each call to a node
     * @param actor           who forces, for the witness history
     * @return the new record
     * @throws SQLException 55000 when refused (the message says why); 40001 when the record changed meanwhile
     */
    public static PartnershipRecord forceService(WitnessStore witness, String partnership, NodeConfig mirror,
                                                 boolean allowDataLoss, PartnerHealth principalHealth,
                                                 Duration partnerTimeout, Duration callTimeout, String actor)
            throws SQLException {
        WitnessStore.Sighting seen = witness.read(partnership);
        PartnershipRecord current = seen.record();
        requireMirror(current, mirror);
        RoleChanges.Result change = RoleChanges.forceService(current, allowDataLoss, principalHealth, PartnerHealth.UP,
                seen.principalUnseenMillis(), partnerTimeout.toMillis());
        if (!change.allowed()) {
            throw SqlStates.error(SqlStates.NOT_READY, "lockstep: forced service refused: " + change.refusal(), null);
        }
        return promote(witness, current, change.next(), mirror, partnerTimeout, callTimeout, actor,
                "forced service with data loss accepted", "forced service: " + mirror.name() + " is principal, mirroring SUSPENDED");
    }

    /**
     * Forced service without a witness (HIGH_SAFETY, SQL Server's FORCE_SERVICE_ALLOW_DATA_LOSS):
     * the operator's consent and a principal this coordinator cannot reach are all there is to go
     * on, so the operator must know the old principal is down. The mirror commits what it holds
     * prepared, takes the next epoch as principal and records its mirroring SUSPENDED; the old
     * principal, should it return, is demoted by the first coordinator that reaches both.
     *
     * @param current         the partnership as this coordinator knows it
     * @param mirror          the mirror node
     * @param allowDataLoss   the operator's explicit consent
     * @param principalHealth the principal's health as this coordinator sees it
     * @param callTimeout     deadline of each call to a node
     * @return the new record
     * @throws SQLException 55000 when refused (the message says why)
     */
    public static PartnershipRecord forceServiceWithoutWitness(PartnershipRecord current, NodeConfig mirror,
                                                               boolean allowDataLoss, PartnerHealth principalHealth,
                                                               Duration callTimeout) throws SQLException {
        requireMirror(current, mirror);
        RoleChanges.Result change = RoleChanges.forceService(current, allowDataLoss, principalHealth, PartnerHealth.FAILED,
                Long.MAX_VALUE, Long.MAX_VALUE);
        if (!change.allowed()) {
            throw SqlStates.error(SqlStates.NOT_READY, "lockstep: forced service refused: " + change.refusal(), null);
        }
        PartnershipRecord next = change.next();
        try (Connection m = connect(mirror, callTimeout)) {
            takePrincipalRole(m, current.name(), mirror.name(), next, callTimeout);
        }
        return next;
    }

    /**
     * Completes a role change whose author stopped half-way (the witness record has stayed
     * PENDING_FAILOVER): the change was decided when the record entered that state, so it is
     * rolled forward. The old principal is demoted first when it can be reached (a planned
     * failover may have left it principal); the mirror takes the next epoch; the witness records
     * the new roles and the target state.
     *
     * @param witness     the witness
     * @param seen        the PENDING_FAILOVER record as read, with its target state
     * @param principal   the record's principal node
     * @param mirror      the record's mirror node
     * @param callTimeout deadline of each call to a node
     * @param actor       who completes it, for the witness history
     * @return the new record
     * @throws SQLException when a node or the witness fails; the record stays pending for the next try
     */
    public static PartnershipRecord completePending(WitnessStore witness, WitnessStore.Sighting seen, NodeConfig principal,
                                                    NodeConfig mirror, Duration callTimeout, String actor) throws SQLException {
        PartnershipRecord pending = seen.record();
        if (pending.state() != MirroringState.PENDING_FAILOVER || seen.pendingTarget() == null) {
            throw SqlStates.error(SqlStates.NOT_READY, "lockstep: partnership " + pending.name() + " has no pending role change: "
                    + pending, null);
        }
        PartnershipRecord next = pending.swapped(seen.pendingTarget());
        try (Connection p = connect(principal, callTimeout)) {
            NodeRoleChange.demote(p, principal.name(), next.epoch(), callTimeout);
        } catch (SQLException unreachableOrBusy) {
            // Unreachable: it stays fenced, since coordinators refuse writes while the change is
            // pending and the mirror's new epoch refuses its old coordinators.
        }
        try (Connection m = connect(mirror, callTimeout)) {
            takePrincipalRole(m, pending.name(), mirror.name(), next, callTimeout);
        }
        witness.transition(pending, next, null, "pending role change completed", actor);
        return next;
    }

    /**
     * Makes a principal that returns after a failover a mirror of the new epoch: its prepared
     * transactions from before are settled against the new principal, then it takes the new
     * epoch as mirror, so it never serves as principal on its own again. It still lacks what the
     * new principal committed meanwhile; the record stays DISCONNECTED until it has caught up.
     *
     * @param witness     the witness
     * @param partnership the partnership
     * @param returning   the returning node
     * @param principal   the new principal
     * @param callTimeout deadline of each call to a node
     * @return how many prepared transactions were committed and rolled back
     * @throws SQLException 55000 when the witness does not name the node as mirror
     */
    public static int[] demoteReturningPrincipal(WitnessStore witness, String partnership, NodeConfig returning,
                                                 NodeConfig principal, Duration callTimeout) throws SQLException {
        PartnershipRecord current = witness.read(partnership).record();
        if (!current.mirror().equals(returning.name()) || !current.principal().equals(principal.name())) {
            throw SqlStates.error(SqlStates.NOT_READY, "lockstep: partnership " + partnership + " at epoch " + current.epoch()
                    + " has principal " + current.principal() + " and mirror " + current.mirror() + ", not principal "
                    + principal.name() + " and mirror " + returning.name(), null);
        }
        return demoteReturning(partnership, returning, principal, current.epoch(), callTimeout);
    }

    /**
     * The node work of {@link #demoteReturningPrincipal}, for a caller that already knows the
     * epoch and roles (without a witness: from the nodes themselves).
     *
     * @param partnership the partnership
     * @param returning   the returning node
     * @param principal   the principal at {@code epoch}
     * @param epoch       the principal's epoch
     * @param callTimeout deadline of each call to a node
     * @return how many prepared transactions were committed and rolled back
     * @throws SQLException when either node fails
     */
    public static int[] demoteReturning(String partnership, NodeConfig returning, NodeConfig principal, long epoch,
                                        Duration callTimeout) throws SQLException {
        try (Connection back = connect(returning, callTimeout); Connection p = connect(principal, callTimeout)) {
            int[] settled = NodeRoleChange.settleReturning(back, p, partnership, epoch);
            NodeRoleChange.demote(back, returning.name(), epoch, callTimeout);
            return settled;
        }
    }

    /**
     * Planned failover with no loss, only while SYNCHRONIZED (Lync's
     * {@code Invoke-CsDatabaseFailover}): the principal is demoted first, which waits for the
     * transactions it is running and fences new ones; the partners' in-doubt transactions are
     * settled between them; the mirror takes the next epoch as principal; the old principal
     * continues as a synchronized mirror. Failing back is the same call naming the other node.
     *
     * @param witness     the witness
     * @param partnership the partnership
     * @param newPrincipal the node to become principal
     * @param principal   the current principal
     * @param mirror      the current mirror
     * @param callTimeout deadline of each call, and of the wait for running transactions
     * @param actor       who asks, for the witness history
     * @return the new record
     * @throws SQLException 55000 when the change is not allowed (the message says why); 40001 when
     *                      the record changed meanwhile; 55P03 when running transactions did not
     *                      end in time (nothing changed)
     */
    public static PartnershipRecord planned(WitnessStore witness, String partnership, String newPrincipal,
                                            NodeConfig principal, NodeConfig mirror, Duration callTimeout, String actor)
            throws SQLException {
        PartnershipRecord current = witness.read(partnership).record();
        RoleChanges.Result change = RoleChanges.manualFailover(current, newPrincipal);
        if (!change.allowed()) {
            throw SqlStates.error(SqlStates.NOT_READY, "lockstep: no planned failover: " + change.refusal(), null);
        }
        if (!current.principal().equals(principal.name()) || !current.mirror().equals(mirror.name())) {
            throw SqlStates.error(SqlStates.SERIALIZATION_FAILURE, "lockstep: partnership " + partnership
                    + " has moved on at the witness: " + current, null);
        }
        PartnershipRecord next = change.next();
        PartnershipRecord pending = current.withState(MirroringState.PENDING_FAILOVER);
        if (!witness.transition(current, pending, null, "planned failover to " + newPrincipal, actor, next.state())) {
            throw SqlStates.error(SqlStates.SERIALIZATION_FAILURE, "lockstep: partnership " + partnership
                    + " changed at the witness meanwhile: " + witness.read(partnership), null);
        }
        try (Connection p = connect(principal, callTimeout); Connection m = connect(mirror, callTimeout)) {
            try {
                NodeRoleChange.demote(p, principal.name(), next.epoch(), callTimeout);
            } catch (SQLException e) {
                // Nothing changed on the nodes: back to where it was.
                witness.transition(pending, current, null, "planned failover abandoned: " + e.getMessage(), actor);
                throw e;
            }
            NodeRoleChange.settleReturning(m, p, partnership, next.epoch());
            takePrincipalRole(m, partnership, mirror.name(), next, callTimeout);
        }
        witness.transition(pending, next, null, "planned failover: " + newPrincipal + " is principal", actor);
        return next;
    }

    /**
     * The node becomes principal of the record's epoch and records the record's mirroring state,
     * which says whether it may commit alone (anything but SYNCHRONIZED) or only in lockstep.
     */
    private static void takePrincipalRole(Connection c, String partnership, String node, PartnershipRecord next,
                                          Duration callTimeout) throws SQLException {
        NodeRoleChange.promote(c, partnership, node, next.epoch(), callTimeout);
        c.setAutoCommit(false);
        try {
            PrincipalState.record(c, next.epoch(), next.state(), callTimeout);
        } finally {
            c.setAutoCommit(true);
        }
    }

    /** A connection to a node whose connect and every read are bounded by the call timeout. */
    static Connection connect(NodeConfig node, Duration callTimeout) throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", node.user());
        p.setProperty("password", node.password());
        p.setProperty("connectTimeout", Long.toString(Math.max(1, callTimeout.toSeconds())));
        p.setProperty("socketTimeout", Long.toString(Math.max(1, callTimeout.toSeconds()) + 5));
        try {
            return DriverManager.getConnection(node.jdbcUrl(), p);
        } catch (SQLException e) {
            throw SqlStates.error(SqlStates.CONNECTION_FAILED, "lockstep: cannot connect to node " + node.name() + ": " + e.getMessage(), e);
        }
    }
}
