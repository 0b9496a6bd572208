package dev.lockstep.witness;

import dev.lockstep.core.MirroringState;
import dev.lockstep.core.OperatingMode;
import dev.lockstep.core.PartnershipRecord;

import javax.sql.DataSource;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * The partnership records a witness holds. Every call is bounded by the call timeout; failures are
 * {@link SQLException}s naming the witness and the partnership, with the server's SQLSTATE (or
 * 08006 when the witness cannot be reached).
 */
public final class WitnessStore {

    private static final List<String> VERSIONS = List.of("V1__witness_schema.sql");

    /**
     * A partnership record as read, with how long no coordinator has reached its principal.
     *
     * @param record                the record
     * @param principalUnseenMillis by the witness's clock; {@link Long#MAX_VALUE} when never seen at this epoch
     * @param pendingTarget         while PENDING_FAILOVER, the state the role change ends in; else null
     * @param unchangedMillis       by the witness's clock, how long since the record last changed
     */
    public record Sighting(PartnershipRecord record, long principalUnseenMillis, MirroringState pendingTarget,
                           long unchangedMillis) {

    }

    /**
     * One recorded transition.
     *
     * @param at        witness time of the change
     * @param oldEpoch  epoch before, or null for the creation
     * @param newEpoch  epoch after
     * @param oldState  state before, or null for the creation
     * @param newState  state after
     * @param principal principal after
     * @param mirror    mirror after
     * @param reason    why
     * @param actor     who (coordinator id or operator)
     */
    public record Transition(Instant at, Long oldEpoch, long newEpoch, MirroringState oldState, MirroringState newState,
                             String principal, String mirror, String reason, String actor) {
    }

    private final DataSource witness;
    private final Duration callTimeout;
    private final String witnessName;

    /**
     * @param witness     connections to the witness database
     * @param callTimeout deadline of each call
     * @param witnessName the witness's name, for messages
     */
    public WitnessStore(DataSource witness, Duration callTimeout, String witnessName) {
        this.witness = Objects.requireNonNull(witness, "witness");
        this.callTimeout = Objects.requireNonNull(callTimeout, "callTimeout");
        this.witnessName = Objects.requireNonNull(witnessName, "witnessName");
    }

    /**
     * Installs any missing version of the witness schema, in one transaction; safe to run from
     * several coordinators at once.
     *
     * @throws SQLException when the installation fails; nothing is left half-installed
     */
    public void install() throws SQLException {
        try (Connection c = connectFor("installing the witness schema")) {
            c.setAutoCommit(false);
            try (Statement st = statement(c)) {
                st.execute("SELECT pg_advisory_xact_lock(hashtextextended('lockstep.witness.install', 0))");
                int installed = installedVersion(st);
                for (int v = installed; v < VERSIONS.size(); v++) {
                    st.execute(load(VERSIONS.get(v)));
                }
                c.commit();
            } catch (SQLException e) {
                c.rollback();
                throw failure("installing the witness schema", null, e);
            }
        }
    }

    /**
     * Checks that the witness schema is installed.
     *
     * @throws SQLException 55000 naming the witness when it is not
     */
    public void requireSchema() throws SQLException {
        boolean installed = call(null, "checking the witness schema",
                "SELECT to_regclass('lockstep_witness.schema_version') IS NOT NULL", ps -> { }, rs -> rs.getBoolean(1));
        if (!installed) {
            throw new SQLException("lockstep: witness " + witnessName + " has no Lockstep witness schema; install it"
                    + " (installSchema=true, or the install command)", "55000");
        }
    }

    /**
     * Creates a partnership at epoch 1 unless the witness already has it.
     *
     * @param initial the record to create; its epoch must be 1
     * @param actor   who creates it
     * @return true when this call created it, false when it existed
     * @throws SQLException when the witness refuses or cannot be reached
     */
    public boolean create(PartnershipRecord initial, String actor) throws SQLException {
        if (initial.epoch() != 1) {
            throw new IllegalArgumentException("a new partnership starts at epoch 1, got " + initial.epoch());
        }
        return call(initial.name(), "creating the partnership",
                "SELECT lockstep_witness.create_partnership(?, ?, ?, ?, ?, ?)", ps -> {
                    ps.setString(1, initial.name());
                    ps.setString(2, initial.principal());
                    ps.setString(3, initial.mirror());
                    ps.setString(4, initial.state().name());
                    ps.setString(5, initial.mode().name());
                    ps.setString(6, actor);
                }, rs -> rs.getBoolean(1));
    }

    /**
     * The outcome of a heartbeat.
     *
     * @param leaseGranted whether the sighting of the principal was recorded (the exposed lease)
     * @param sighting     the record as it stands after the heartbeat
     */
    public record Beat(boolean leaseGranted, Sighting sighting) {
    }

    /**
     * A coordinator's heartbeat in one round trip: registers it, records that it reached the
     * principal of {@code epoch} if it did, and reads the record.
     *
     * @param principalReached whether the coordinator reached the principal since its last beat
     * @return whether the sighting was recorded, and the record
     * @throws SQLException when the witness cannot be reached or has no such partnership
     */
    public Beat beat(String partnership, String coordinatorId, long epoch, boolean principalReached) throws SQLException {
        return call(partnership, "recording the heartbeat of coordinator " + coordinatorId,
                "SELECT lease_granted, epoch, principal, mirror, state, mode, principal_unseen_ms, pending_target, unchanged_ms"
                        + " FROM lockstep_witness.beat(?, ?, ?, ?)", ps -> {
                    ps.setString(1, partnership);
                    ps.setString(2, coordinatorId);
                    ps.setLong(3, epoch);
                    ps.setBoolean(4, principalReached);
                }, rs -> new Beat(rs.getBoolean(1), sighting(partnership, rs, 2)));
    }

    /**
     * Reads a partnership record.
     *
     * @param partnership the partnership
     * @return the record and the principal's last sighting
     * @throws SQLException 42704 when the witness has no such partnership
     */
    public Sighting read(String partnership) throws SQLException {
        return call(partnership, "reading the partnership",
                "SELECT epoch, principal, mirror, state, mode, principal_unseen_ms, pending_target, unchanged_ms"
                        + " FROM lockstep_witness.read(?)",
                ps -> ps.setString(1, partnership), rs -> sighting(partnership, rs, 1));
    }

    /** Reads the eight columns of lockstep_witness.read starting at column {@code first}. */
    private static Sighting sighting(String partnership, ResultSet rs, int first) throws SQLException {
        long unseen = rs.getLong(first + 5);
        boolean neverSeen = rs.wasNull();
        String target = rs.getString(first + 6);
        return new Sighting(new PartnershipRecord(partnership, rs.getLong(first), rs.getString(first + 1),
                rs.getString(first + 2), MirroringState.valueOf(rs.getString(first + 3)), OperatingMode.valueOf(rs.getString(first + 4))),
                neverSeen ? Long.MAX_VALUE : unseen, target == null ? null : MirroringState.valueOf(target), rs.getLong(first + 7));
    }

    /**
     * Compare-and-set: installs {@code next} if the witness still holds {@code expected}'s epoch
     * and state.
     *
     * @param expected                 the record the caller acted on
     * @param next                     the record to install
     * @param minPrincipalUnseenMillis when not null, the change also needs that no coordinator
     *                                 reached the principal for this long (checked atomically)
     * @param reason                   why, for the history
     * @param actor                    who, for the history
     * @return true when this call made the change; false when the record had moved on
     * @throws SQLException 22023 when {@code next} would go back in epoch or swap roles without a new epoch
     */
    public boolean transition(PartnershipRecord expected, PartnershipRecord next, Long minPrincipalUnseenMillis,
                              String reason, String actor) throws SQLException {
        return transition(expected, next, minPrincipalUnseenMillis, reason, actor, null);
    }

    /**
     * Compare-and-set as {@link #transition(PartnershipRecord, PartnershipRecord, Long, String, String)};
     * a move to PENDING_FAILOVER also names the state the role change ends in, so that any
     * coordinator can complete it should its author crash.
     *
     * @param pendingTarget the state after the pending role change, required when {@code next} is PENDING_FAILOVER
     */
    public boolean transition(PartnershipRecord expected, PartnershipRecord next, Long minPrincipalUnseenMillis,
                              String reason, String actor, MirroringState pendingTarget) throws SQLException {
        if (!expected.name().equals(next.name())) {
            throw new IllegalArgumentException("a transition stays within one partnership: " + expected.name() + " vs " + next.name());
        }
        return call(expected.name(), "changing the partnership from epoch " + expected.epoch() + " " + expected.state()
                        + " to epoch " + next.epoch() + " " + next.state(),
                "SELECT lockstep_witness.transition(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", ps -> {
                    ps.setString(1, expected.name());
                    ps.setLong(2, expected.epoch());
                    ps.setString(3, expected.state().name());
                    ps.setLong(4, next.epoch());
                    ps.setString(5, next.principal());
                    ps.setString(6, next.mirror());
                    ps.setString(7, next.state().name());
                    ps.setObject(8, minPrincipalUnseenMillis, java.sql.Types.BIGINT);
                    ps.setString(9, reason);
                    ps.setString(10, actor);
                    ps.setString(11, pendingTarget == null ? null : pendingTarget.name());
                }, rs -> rs.getBoolean(1));
    }

    /**
     * Records that a coordinator reached the principal of the given epoch.
     *
     * @return false when the record moved to another epoch or a role change is under way
     * @throws SQLException when the witness cannot be reached
     */
    public boolean principalSeen(String partnership, long epoch, String coordinatorId) throws SQLException {
        return call(partnership, "recording a sighting of the principal at epoch " + epoch,
                "SELECT lockstep_witness.principal_seen(?, ?, ?)", ps -> {
                    ps.setString(1, partnership);
                    ps.setLong(2, epoch);
                    ps.setString(3, coordinatorId);
                }, rs -> rs.getBoolean(1));
    }

    /**
     * A coordinator's heartbeat; registers it on the first call.
     *
     * @throws SQLException when the witness cannot be reached or has no such partnership (23503)
     */
    public void heartbeat(String partnership, String coordinatorId, long epochSeen) throws SQLException {
        call(partnership, "recording the heartbeat of coordinator " + coordinatorId,
                "SELECT lockstep_witness.heartbeat(?, ?, ?)", ps -> {
                    ps.setString(1, partnership);
                    ps.setString(2, coordinatorId);
                    ps.setLong(3, epochSeen);
                }, rs -> null);
    }

    /**
     * Records that the mirror of the given epoch must be seeded rather than caught up; the
     * history keeps the reason. Reaching SYNCHRONIZED clears it; so does a new epoch.
     *
     * @param partnership the partnership
     * @param epoch       the epoch the caller acts in
     * @param reason      why, for the history
     * @param actor       who, for the history
     * @return false when the record is at another epoch
     * @throws SQLException when the witness cannot be reached
     */
    public boolean markMirrorForSeeding(String partnership, long epoch, String reason, String actor) throws SQLException {
        return call(partnership, "marking the mirror of epoch " + epoch + " for seeding",
                "SELECT lockstep_witness.mark_mirror_for_seeding(?, ?, ?, ?)", ps -> {
                    ps.setString(1, partnership);
                    ps.setLong(2, epoch);
                    ps.setString(3, reason);
                    ps.setString(4, actor);
                }, rs -> rs.getBoolean(1));
    }

    /**
     * Whether the witness records that the current mirror must be seeded.
     *
     * @param partnership the partnership
     * @return true when marked at the record's current epoch
     * @throws SQLException 42704 when the witness has no such partnership
     */
    public boolean mirrorNeedsSeeding(String partnership) throws SQLException {
        Boolean marked = call(partnership, "reading the seeding mark",
                "SELECT mirror_needs_seed_epoch IS NOT DISTINCT FROM epoch FROM lockstep_witness.partnership WHERE name = ?",
                ps -> ps.setString(1, partnership), rs -> rs.getRow() == 0 ? null : rs.getBoolean(1));
        if (marked == null) {
            throw new SQLException("lockstep: witness " + witnessName + " has no partnership " + partnership, "42704");
        }
        return marked;
    }

    /**
     * Every recorded transition of a partnership, oldest first.
     *
     * @throws SQLException when the witness cannot be reached
     */
    public List<Transition> history(String partnership) throws SQLException {
        try (Connection c = connect();
             PreparedStatement ps = c.prepareStatement("SELECT at, old_epoch, new_epoch, old_state, new_state, principal, mirror,"
                     + " reason, actor FROM lockstep_witness.history WHERE partnership = ? ORDER BY id")) {
            ps.setQueryTimeout(seconds());
            ps.setString(1, partnership);
            List<Transition> out = new ArrayList<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    long oldEpoch = rs.getLong(2);
                    Long old = rs.wasNull() ? null : oldEpoch;
                    String oldState = rs.getString(4);
                    out.add(new Transition(rs.getTimestamp(1).toInstant(), old, rs.getLong(3),
                            oldState == null ? null : MirroringState.valueOf(oldState), MirroringState.valueOf(rs.getString(5)),
                            rs.getString(6), rs.getString(7), rs.getString(8), rs.getString(9)));
                }
            }
            return out;
        } catch (SQLException e) {
            throw failure("reading the history", partnership, e);
        }
    }

    private interface Binder {
        void bind(PreparedStatement ps) throws SQLException;
    }

    private interface Reader<T> {
        T read(ResultSet rs) throws SQLException;
    }

    private <T> T call(String partnership, String what, String sql, Binder binder, Reader<T> reader) throws SQLException {
        try (Connection c = connect(); PreparedStatement ps = c.prepareStatement(sql)) {
            ps.setQueryTimeout(seconds());
            binder.bind(ps);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return reader.read(rs);
            }
        } catch (SQLException e) {
            throw failure(what, partnership, e);
        }
    }

    private Connection connectFor(String what) throws SQLException {
        try {
            return connect();
        } catch (SQLException e) {
            throw failure(what, null, e);
        }
    }

    private Connection connect() throws SQLException {
        Connection c = witness.getConnection();
        if (!c.getAutoCommit()) {
            c.setAutoCommit(true);
        }
        return c;
    }

    private Statement statement(Connection c) throws SQLException {
        Statement st = c.createStatement();
        st.setQueryTimeout(seconds());
        return st;
    }

    private int seconds() {
        return (int) Math.max(1, (callTimeout.toMillis() + 999) / 1000);
    }

    private SQLException failure(String what, String partnership, SQLException cause) {
        // A pool that could not connect reports its own timeout; the server's reason is its cause.
        Throwable reason = cause.getCause() instanceof SQLException inner ? inner : cause;
        String state = cause.getSQLState() != null ? cause.getSQLState()
                : reason instanceof SQLException r && r.getSQLState() != null ? r.getSQLState() : "08006";
        String subject = partnership == null ? "" : " of partnership " + partnership;
        String detail = reason == cause ? cause.getMessage() : cause.getMessage() + " (" + reason.getMessage() + ")";
        return new SQLException("lockstep: witness " + witnessName + ": " + what + subject + " failed: " + detail, state, cause);
    }

    private static int installedVersion(Statement st) throws SQLException {
        try (ResultSet rs = st.executeQuery("SELECT to_regclass('lockstep_witness.schema_version') IS NOT NULL")) {
            rs.next();
            if (!rs.getBoolean(1)) {
                return 0;
            }
        }
        try (ResultSet rs = st.executeQuery("SELECT max(version) FROM lockstep_witness.schema_version")) {
            rs.next();
            return rs.getInt(1);
        }
    }

    private static String load(String file) throws SQLException {
        String path = "/dev/lockstep/sql/witness/" + file;
        try (InputStream in = WitnessStore.class.getResourceAsStream(path)) {
            if (in == null) {
                throw new SQLException("lockstep: " + path + " is missing from the classpath", "55000");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new SQLException("lockstep: cannot read " + path, "55000", e);
        }
    }
}
