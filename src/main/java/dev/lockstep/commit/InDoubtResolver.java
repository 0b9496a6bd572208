package dev.lockstep.commit;

import dev.lockstep.core.Gid;
import dev.lockstep.core.InDoubtRule;
import dev.lockstep.core.InDoubtRule.Outcome;
import dev.lockstep.core.InDoubtRule.Peer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import javax.sql.DataSource;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.BooleanSupplier;
import java.util.function.Predicate;

/**
 * Finds the partnership's prepared transactions on both nodes and settles each by
 * {@link InDoubtRule}. It never touches a prepared transaction that is not Lockstep's or not of
 * this partnership, and leaves alone those a live commit is still working on.
 */
public final class InDoubtResolver {

    private static final Logger LOG = LoggerFactory.getLogger(InDoubtResolver.class);

    /**
     * A node as the resolver reaches it.
     *
     * @param name node name
     * @param pool connections to it (autocommit off)
     */
    public record Node(String name, DataSource pool) {
    }

    /**
     * What one pass did.
     *
     * @param committed   transactions committed
     * @param rolledBack  transactions rolled back
     * @param waiting     transactions left for a later pass
     */
    public record Result(int committed, int rolledBack, int waiting) {
        Result plus(Result o) {
            return new Result(committed + o.committed, rolledBack + o.rolledBack, waiting + o.waiting);
        }
    }

    private record Prepared(String gid, long ageMillis) {
    }

    private final String partnership;
    private final Node first;
    private final Node second;
    private final Predicate<String> ownerActive;
    private final Predicate<String> ownedHere;
    private final Duration grace;
    private final Duration callTimeout;
    private final BooleanSupplier mirrorWrittenOff;

    /**
     * @param partnership partnership whose transactions to settle
     * @param first       one node
     * @param second      the other node
     * @param ownerActive whether a live commit of this coordinator still works on a gid
     * @param grace       minimum age of a transaction no live commit of ours owns before it is settled
     * @param callTimeout deadline of each call to a node
     */
    public InDoubtResolver(String partnership, Node first, Node second, Predicate<String> ownerActive,
                           Duration grace, Duration callTimeout) {
        this(partnership, first, second, ownerActive, gid -> false, grace, callTimeout, () -> false);
    }

    /**
     * @param partnership      partnership whose transactions to settle
     * @param first            the principal
     * @param second           the mirror
     * @param ownerActive      whether a live commit of this coordinator still works on a gid
     * @param ownedHere        whether a gid was prepared by this coordinator (this run of it): once
     *                         no live commit works on it, it is settled without waiting for the grace
     * @param grace            minimum age of a transaction of another owner before it is settled
     * @param callTimeout      deadline of each call to a node
     * @param mirrorWrittenOff whether an unreachable mirror counts as {@link Peer#WRITTEN_OFF}: the
     *                         witness records it DISCONNECTED and the principal holds its lease
     */
    public InDoubtResolver(String partnership, Node first, Node second, Predicate<String> ownerActive,
                           Predicate<String> ownedHere, Duration grace, Duration callTimeout, BooleanSupplier mirrorWrittenOff) {
        this.mirrorWrittenOff = mirrorWrittenOff;
        this.ownedHere = ownedHere;
        this.partnership = partnership;
        this.first = first;
        this.second = second;
        this.ownerActive = ownerActive;
        this.grace = grace;
        this.callTimeout = callTimeout;
    }

    /**
     * One pass over both nodes. A node that cannot be reached is skipped; its transactions wait.
     *
     * @return what was done
     */
    public Result resolve() {
        return resolveOn(first, second).plus(resolveOn(second, first));
    }

    private Result resolveOn(Node local, Node peer) {
        List<Prepared> prepared;
        try {
            prepared = listPrepared(local);
        } catch (SQLException e) {
            LOG.debug("lockstep: in-doubt resolution cannot reach node {}: {}", local.name(), e.getMessage());
            return new Result(0, 0, 0);
        }
        int committed = 0;
        int rolledBack = 0;
        int waiting = 0;
        for (Prepared p : prepared) {
            Peer state = peerState(peer, p.gid());
            if (state == Peer.UNREACHABLE && peer == second && mirrorWrittenOff.getAsBoolean()) {
                state = Peer.WRITTEN_OFF;
            }
            // The owner is asked after the peer: a commit of ours that ends in between leaves a
            // stale peer reading, which the bar (before a rollback) and 42704 (after a commit) absorb.
            Outcome outcome = InDoubtRule.decide(state, owner(p.gid()), p.ageMillis(), grace.toMillis());
            try {
                if (outcome == Outcome.COMMIT) {
                    finish(local, "COMMIT PREPARED", p.gid());
                    committed++;
                } else if (outcome == Outcome.ROLLBACK) {
                    if (!bar(peer, p.gid())) {
                        waiting++;
                        continue;
                    }
                    finish(local, "ROLLBACK PREPARED", p.gid());
                    rolledBack++;
                } else {
                    waiting++;
                }
            } catch (SQLException e) {
                if ("42704".equals(e.getSQLState())) {
                    // Finished meanwhile by its own commit or another resolver.
                    continue;
                }
                LOG.warn("lockstep: could not {} {} on node {}: {}", outcome, p.gid(), local.name(), e.getMessage());
                waiting++;
            }
        }
        return new Result(committed, rolledBack, waiting);
    }

    private InDoubtRule.Owner owner(String gid) {
        if (ownerActive.test(gid)) {
            return InDoubtRule.Owner.ACTIVE;
        }
        return ownedHere.test(gid) ? InDoubtRule.Owner.ABANDONED_HERE : InDoubtRule.Owner.UNKNOWN;
    }

    private List<Prepared> listPrepared(Node node) throws SQLException {
        List<Prepared> result = new ArrayList<>();
        try (Connection c = node.pool().getConnection();
             PreparedStatement ps = c.prepareStatement(
                     "SELECT gid, (extract(epoch FROM now() - prepared) * 1000)::bigint FROM pg_prepared_xacts"
                             + " WHERE database = current_database() AND starts_with(gid, ?)")) {
            ps.setQueryTimeout(Nodes.seconds(callTimeout));
            ps.setString(1, Gid.prefixOf(partnership));
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    if (Gid.parseOrNull(rs.getString(1)) != null) {
                        result.add(new Prepared(rs.getString(1), rs.getLong(2)));
                    }
                }
            } finally {
                c.rollback();
            }
        }
        return result;
    }

    /**
     * Reads the peer in two statements: first the list of prepared transactions, then, with a
     * later snapshot, the journal. A COMMIT PREPARED running between the two is then seen by the
     * second; read in one statement, it could be missed by both and taken for ABSENT.
     */
    private Peer peerState(Node peer, String gid) {
        try (Connection c = peer.pool().getConnection()) {
            try {
                if (exists(c, "SELECT EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE gid = ? AND database = current_database())", gid)) {
                    return Peer.PREPARED;
                }
                return exists(c, "SELECT lockstep.committed(?)", gid) ? Peer.COMMITTED : Peer.ABSENT;
            } finally {
                c.rollback();
            }
        } catch (SQLException e) {
            return Peer.UNREACHABLE;
        }
    }

    private boolean exists(Connection c, String sql, String gid) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement(sql)) {
            ps.setQueryTimeout(Nodes.seconds(callTimeout));
            ps.setString(1, gid);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getBoolean(1);
            }
        }
    }

    /**
     * Bars the gid on the peer before rolling back here, so that a live commit that was only slow
     * cannot prepare it there afterwards. False when the gid is busy on the peer: wait.
     */
    private boolean bar(Node peer, String gid) throws SQLException {
        try (Connection c = peer.pool().getConnection()) {
            try (java.sql.Statement st = c.createStatement()) {
                st.execute("SET LOCAL lock_timeout = '" + Math.max(100, callTimeout.toMillis() / 2) + "ms'");
            }
            boolean barred = exists(c, "SELECT lockstep.bar(?)", gid);
            c.commit();
            return barred;
        }
    }

    private void finish(Node node, String command, String gid) throws SQLException {
        try (Connection c = node.pool().getConnection()) {
            Nodes.runOutsideTransaction(c, command + " " + Nodes.quoted(gid), callTimeout);
        }
        LOG.info("lockstep: in-doubt transaction {} settled on node {}: {}", gid, node.name(), command);
    }
}
