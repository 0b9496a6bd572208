package dev.lockstep.it;

import dev.lockstep.LockstepConfig;
import dev.lockstep.LockstepDataSource;
import dev.lockstep.NodeConfig;
import dev.lockstep.core.MirroringState;
import dev.lockstep.core.PartnershipRecord;
import dev.lockstep.testing.PgNode;
import org.junit.jupiter.api.Test;

import java.sql.Connection;
import java.time.Duration;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * Three partnerships on one witness, over four servers: one's principal is killed, then
 * another's is frozen. Each fails over on its own; the third, whose mirror shared the killed
 * server, runs exposed instead; none follows another's epoch.
 */
class ManyPartnershipsTest {

    private static final Duration PARTNER_TIMEOUT = Duration.ofSeconds(2);

    @Test
    void partnershipsOnOneWitnessFailOverIndependently() throws Exception {
        try (Witness witness = Witness.start(); PgNode a = PgNode.start("node-a"); PgNode b = PgNode.start("node-b");
             PgNode c = PgNode.start("node-c"); PgNode d = PgNode.start("node-d")) {
            Member first = new Member("first", a, b, witness);
            Member second = new Member("second", c, d, witness);
            Member third = new Member("third", b, a, witness);
            try (LockstepDataSource ds1 = first.start(); LockstepDataSource ds2 = second.start();
                 LockstepDataSource ds3 = third.start();
                 Writers w1 = Writers.start(ds1, 2); Writers w2 = Writers.start(ds2, 2); Writers w3 = Writers.start(ds3, 2)) {
                await().atMost(Duration.ofSeconds(30)).until(() -> w1.count() >= 50 && w2.count() >= 50 && w3.count() >= 50);

                a.kill();
                try {
                    await().atMost(Duration.ofSeconds(30)).until(() -> first.record().epoch() == 2);
                    assertThat(first.record().principal()).isEqualTo(first.mirrorName());
                    // The third partnership lost only its mirror (on the killed server): exposed, same epoch.
                    await().atMost(Duration.ofSeconds(30)).until(() -> third.record().state() == MirroringState.DISCONNECTED);
                    assertThat(third.record().epoch()).isEqualTo(1);
                    assertThat(second.record()).isEqualTo(second.initial());
                    int secondBefore = w2.count();
                    await().atMost(Duration.ofSeconds(30)).until(() -> w2.count() >= secondBefore + 50);

                    c.freeze();
                    try {
                        await().atMost(Duration.ofSeconds(30)).until(() -> second.record().epoch() == 2);
                        assertThat(second.record().principal()).isEqualTo(second.mirrorName());
                        assertThat(first.record().epoch()).isEqualTo(2);
                        assertThat(third.record().epoch()).isEqualTo(1);
                        for (Writers w : List.of(w1, w2, w3)) {
                            int before = w.count();
                            await().atMost(Duration.ofSeconds(30)).until(() -> w.count() >= before + 20);
                        }
                    } finally {
                        c.thaw();
                    }
                } finally {
                    a.restart();
                }
                w1.stop();
                w2.stop();
                w3.stop();
                first.assertHolds(w1.acknowledged(), b);
                second.assertHolds(w2.acknowledged(), d);
                third.assertHolds(w3.acknowledged(), b);
            }
            // One transition to the new epoch each, recorded under its own name.
            for (Member m : List.of(first, second)) {
                assertThat(witness.store().history(m.name)).extracting(t -> t.newState())
                        .containsSubsequence(MirroringState.SYNCHRONIZED, MirroringState.PENDING_FAILOVER,
                                MirroringState.DISCONNECTED);
            }
            assertThat(witness.store().history(third.name)).extracting(t -> t.newState())
                    .doesNotContain(MirroringState.PENDING_FAILOVER);
        }
    }

    /** One partnership: a database on each of two servers. */
    private static final class Member {
        final String name;
        final PgNode principal;
        final PgNode mirror;
        final String principalDb;
        final String mirrorDb;
        final Witness witness;

        Member(String name, PgNode principal, PgNode mirror, Witness witness) {
            this.name = name;
            this.principal = principal;
            this.mirror = mirror;
            this.principalDb = principal.createDatabase(name);
            this.mirrorDb = mirror.createDatabase(name);
            this.witness = witness;
        }

        String mirrorName() {
            return mirror.name();
        }

        PartnershipRecord initial() {
            return new PartnershipRecord(name, 1, principal.name(), mirror.name(), MirroringState.SYNCHRONIZED,
                    dev.lockstep.core.OperatingMode.HIGH_SAFETY_AUTOMATIC_FAILOVER);
        }

        LockstepDataSource start() throws Exception {
            LockstepConfig config = LockstepConfig.builder().partnership(name)
                    .principal(NodeConfig.of(principal.name(), principal.jdbcUrl(principalDb), principal.user(), principal.password()))
                    .mirror(NodeConfig.of(mirror.name(), mirror.jdbcUrl(mirrorDb), mirror.user(), mirror.password()))
                    .witness(witness.config()).partnerTimeout(PARTNER_TIMEOUT).heartbeatInterval(Duration.ofMillis(200))
                    .remoteCallTimeout(Duration.ofSeconds(1)).connectTimeout(Duration.ofSeconds(2))
                    .inDoubtGrace(Duration.ofSeconds(5)).resolverInterval(Duration.ofMillis(300)).poolSize(4).build();
            LockstepDataSource ds = LockstepDataSource.start(config);
            assertThat(TwoNodes.acknowledged(ds, "CREATE TABLE t (id bigint PRIMARY KEY)")).isTrue();
            return ds;
        }

        PartnershipRecord record() throws Exception {
            return witness.store().read(name).record();
        }

        /** Every acknowledged insert is on the node that serves now. */
        void assertHolds(java.util.Set<Long> acknowledged, PgNode serving) throws Exception {
            String db = serving == principal ? principalDb : mirrorDb;
            try (Connection conn = serving.connectDirect(db)) {
                assertThat(Writers.ids(conn)).as(name).containsAll(acknowledged);
            }
        }
    }
}
