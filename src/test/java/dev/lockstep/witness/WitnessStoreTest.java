package dev.lockstep.witness;

import dev.lockstep.core.MirroringState;
import dev.lockstep.core.OperatingMode;
import dev.lockstep.core.PartnershipRecord;
import dev.lockstep.core.QuorumRules;
import dev.lockstep.core.RoleChanges;
import dev.lockstep.testing.PgNode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.postgresql.ds.PGSimpleDataSource;

import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** The witness store against a real PostgreSQL witness. */
class WitnessStoreTest {

    private static PgNode node;
    private static WitnessStore store;
    private static PGSimpleDataSource source;

    @BeforeAll
    static void start() throws SQLException {
        node = PgNode.start("witness");
        source = new PGSimpleDataSource();
        source.setUrl(node.jdbcUrl(node.createDatabase("witness")));
        source.setUser(node.user());
        source.setPassword(node.password());
        store = new WitnessStore(source, Duration.ofSeconds(2), "witness");
        store.install();
    }

    @AfterAll
    static void stop() {
        node.close();
    }

    private static PartnershipRecord fresh(String name) {
        return new PartnershipRecord(name, 1, "a", "b", MirroringState.SYNCHRONIZED, OperatingMode.HIGH_SAFETY_AUTOMATIC_FAILOVER);
    }

    @Test
    void installIsIdempotentAndCreateKeepsAnExistingRecord() throws SQLException {
        store.install();
        PartnershipRecord r = fresh("create");
        assertThat(store.create(r, "test")).isTrue();
        assertThat(store.create(new PartnershipRecord("create", 1, "b", "a", MirroringState.SUSPENDED, OperatingMode.HIGH_SAFETY), "other"))
                .isFalse();
        WitnessStore.Sighting s = store.read("create");
        assertThat(s.record()).isEqualTo(r);
        // A new partnership's principal counts as just seen: a promotion waits a partner timeout.
        assertThat(s.principalUnseenMillis()).isBetween(0L, 60_000L);
        assertThat(store.history("create")).singleElement().satisfies(t -> {
            assertThat(t.reason()).isEqualTo("partnership created");
            assertThat(t.actor()).isEqualTo("test");
            assertThat(t.oldEpoch()).isNull();
        });
    }

    @Test
    void exactlyOneOfManyRacingCoordinatorsWinsATransition() throws Exception {
        PartnershipRecord r = fresh("race");
        store.create(r, "test");
        PartnershipRecord next = RoleChanges.automaticFailover(r, QuorumRules.Action.FAILOVER).next();
        int racers = 8;
        CountDownLatch go = new CountDownLatch(1);
        ExecutorService pool = Executors.newFixedThreadPool(racers);
        try {
            List<Future<Boolean>> results = new ArrayList<>();
            for (int i = 0; i < racers; i++) {
                String actor = "coordinator-" + i;
                Callable<Boolean> racer = () -> {
                    go.await();
                    return store.transition(r, next, null, "principal lost", actor);
                };
                results.add(pool.submit(racer));
            }
            go.countDown();
            int wins = 0;
            for (Future<Boolean> f : results) {
                wins += f.get(30, TimeUnit.SECONDS) ? 1 : 0;
            }
            assertThat(wins).isEqualTo(1);
        } finally {
            pool.shutdownNow();
        }
        assertThat(store.read("race").record()).isEqualTo(next);
        assertThat(store.history("race")).hasSize(2).last().satisfies(t -> {
            assertThat(t.oldEpoch()).isEqualTo(1L);
            assertThat(t.newEpoch()).isEqualTo(2L);
            assertThat(t.principal()).isEqualTo("b");
            assertThat(t.newState()).isEqualTo(MirroringState.DISCONNECTED);
            assertThat(t.reason()).isEqualTo("principal lost");
        });
        // A coordinator still acting on the old record loses.
        assertThat(store.transition(r, RoleChanges.suspend(r).next(), null, "stale", "late")).isFalse();
    }

    @Test
    void aPromotionWaitsUntilNoCoordinatorHasReachedThePrincipalForThePartnerTimeout() throws SQLException {
        PartnershipRecord r = fresh("lease");
        store.create(r, "test");
        assertThat(store.principalSeen("lease", 1, "c1")).isTrue();
        assertThat(store.read("lease").principalUnseenMillis()).isBetween(0L, 5_000L);
        PartnershipRecord pending = r.withState(MirroringState.PENDING_FAILOVER);
        assertThat(store.transition(r, pending, 10_000L, "principal lost", "c2", MirroringState.DISCONNECTED)).isFalse();
        ageSighting("lease", 11);
        assertThat(store.read("lease").principalUnseenMillis()).isGreaterThanOrEqualTo(11_000L);
        assertThat(store.transition(r, pending, 10_000L, "principal lost", "c2", MirroringState.DISCONNECTED)).isTrue();
        // While the role change is under way nobody renews the old principal's lease.
        assertThat(store.principalSeen("lease", 1, "c1")).isFalse();
        PartnershipRecord promoted = pending.swapped(MirroringState.DISCONNECTED);
        assertThat(store.transition(pending, promoted, null, "mirror promoted", "c2")).isTrue();
        // The new principal counts as just seen, so the next promotion waits a partner timeout too;
        // coordinators of the old epoch are refused and must fence.
        assertThat(store.read("lease").principalUnseenMillis()).isBetween(0L, 5_000L);
        assertThat(store.transition(promoted, promoted.withState(MirroringState.PENDING_FAILOVER), 10_000L, "too soon", "c3",
                MirroringState.DISCONNECTED))
                .isFalse();
        assertThat(store.principalSeen("lease", 1, "c1")).isFalse();
        assertThat(store.principalSeen("lease", 2, "c2")).isTrue();
    }

    @Test
    void oneWitnessServesManyPartnershipsAndRegistersTheirCoordinators() throws SQLException {
        for (int i = 0; i < 5; i++) {
            store.create(fresh("many-" + i), "test");
            store.heartbeat("many-" + i, "c-" + i, 1);
            store.heartbeat("many-" + i, "c-" + i, 1);
        }
        store.transition(fresh("many-3"), fresh("many-3").withState(MirroringState.SUSPENDED), null, "operator", "ops");
        assertThat(store.read("many-3").record().state()).isEqualTo(MirroringState.SUSPENDED);
        assertThat(store.read("many-2").record().state()).isEqualTo(MirroringState.SYNCHRONIZED);
        try (Connection c = source.getConnection(); Statement st = c.createStatement();
             var rs = st.executeQuery("SELECT count(*) FROM lockstep_witness.coordinator WHERE partnership LIKE 'many-%'")) {
            rs.next();
            assertThat(rs.getLong(1)).isEqualTo(5);
        }
    }

    @Test
    void aBeatRegistersGrantsTheLeaseOnlyAtTheCurrentEpochAndReadsTheRecord() throws SQLException {
        PartnershipRecord r = fresh("beat");
        store.create(r, "test");
        WitnessStore.Beat first = store.beat("beat", "c1", 1, true);
        assertThat(first.leaseGranted()).isTrue();
        assertThat(first.sighting().record()).isEqualTo(r);
        assertThat(store.beat("beat", "c1", 1, false).leaseGranted()).isFalse();
        PartnershipRecord moved = r.swapped(MirroringState.DISCONNECTED);
        store.transition(r, moved, null, "test", "test");
        WitnessStore.Beat stale = store.beat("beat", "c1", 1, true);
        assertThat(stale.leaseGranted()).isFalse();
        assertThat(stale.sighting().record()).isEqualTo(moved);
        try (Connection c = source.getConnection(); Statement st = c.createStatement();
             var rs = st.executeQuery("SELECT count(*) FROM lockstep_witness.coordinator WHERE partnership = 'beat'")) {
            rs.next();
            assertThat(rs.getLong(1)).isEqualTo(1);
        }
    }

    @Test
    void badRequestsFailWithClearErrorsAndChangeNothing() throws SQLException {
        assertThatThrownBy(() -> store.read("nobody"))
                .isInstanceOfSatisfying(SQLException.class, e -> assertThat(e.getSQLState()).isEqualTo("42704"))
                .hasMessageContaining("witness witness").hasMessageContaining("nobody");
        assertThatThrownBy(() -> store.heartbeat("nobody", "c", 1))
                .isInstanceOfSatisfying(SQLException.class, e -> assertThat(e.getSQLState()).isEqualTo("23503"));
        PartnershipRecord r = fresh("bad");
        store.create(r, "test");
        PartnershipRecord swappedWithoutNewEpoch = new PartnershipRecord("bad", 1, "b", "a", MirroringState.SYNCHRONIZED,
                OperatingMode.HIGH_SAFETY_AUTOMATIC_FAILOVER);
        assertThatThrownBy(() -> store.transition(r, swappedWithoutNewEpoch, null, "wrong", "test"))
                .isInstanceOfSatisfying(SQLException.class, e -> assertThat(e.getSQLState()).isEqualTo("22023"))
                .hasMessageContaining("epoch 1");
        assertThat(store.read("bad").record()).isEqualTo(r);
        assertThat(store.history("bad")).hasSize(1);
    }

    @Test
    void anUnreachableWitnessFailsWithinTheDeadline() {
        PGSimpleDataSource nowhere = new PGSimpleDataSource();
        nowhere.setUrl("jdbc:postgresql://127.0.0.1:1/witness?connectTimeout=2");
        WitnessStore unreachable = new WitnessStore(nowhere, Duration.ofSeconds(1), "w2");
        assertThatThrownBy(() -> unreachable.read("p"))
                .isInstanceOfSatisfying(SQLException.class, e -> assertThat(e.getSQLState()).startsWith("08"))
                .hasMessageContaining("witness w2");
    }

    private static void ageSighting(String partnership, int seconds) throws SQLException {
        try (Connection c = source.getConnection(); Statement st = c.createStatement()) {
            st.executeUpdate("UPDATE lockstep_witness.partnership SET principal_seen_at = principal_seen_at - interval '"
                    + seconds + " seconds' WHERE name = '" + partnership + "'");
        }
    }
}
