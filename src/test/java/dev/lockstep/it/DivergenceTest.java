package dev.lockstep.it;

import dev.lockstep.DivergentTransaction;
import dev.lockstep.LockstepConfig;
import dev.lockstep.LockstepDataSource;
import dev.lockstep.VerifyReport;
import dev.lockstep.core.MirroringState;
import dev.lockstep.core.PartnershipRecord;
import dev.lockstep.core.QuorumRules;
import dev.lockstep.witness.WitnessStore;
import org.junit.jupiter.api.Test;

import java.sql.Connection;
import java.sql.SQLException;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;

import static dev.lockstep.it.TwoNodes.rows;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * After forced service the old principal returns holding transactions it committed alone: they
 * are reported (row images, original epoch and position), never replayed nor silently dropped,
 * and the node is re-seeded as mirror.
 */
class DivergenceTest extends OnTwoNodesAndWitness {

    private static LockstepConfig config(TwoNodes.Pair pair) {
        return pair.config().witness(witness.config()).partnerTimeout(Duration.ofSeconds(2))
                .heartbeatInterval(Duration.ofMillis(200)).journalCheckInterval(Duration.ofMillis(300)).build();
    }

    private static PartnershipRecord record(TwoNodes.Pair pair) throws SQLException {
        return witness.store().read(pair.partnership()).record();
    }

    private static Set<Long> ids(Connection c) throws SQLException {
        return new HashSet<>(Writers.ids(c));
    }

    @Test
    void forcedServiceThenTheOldPrincipalReturns_itsExtraTransactionsAreReportedAndItIsReseeded() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("diverge");
        Set<Long> aloneAcknowledged = new HashSet<>();
        Set<List<Object>> expectedKeys = new HashSet<>();
        try (LockstepDataSource ds = LockstepDataSource.start(config(pair))) {
            assertThat(TwoNodes.acknowledged(ds, "CREATE TABLE t (id bigint PRIMARY KEY)")).isTrue();
            for (long id = 1; id <= 50; id++) {
                assertThat(TwoNodes.acknowledged(ds, "INSERT INTO t VALUES (" + id + ")")).isTrue();
            }
            // The mirror is cut off; the principal commits alone.
            nodes.b().proxy().partition();
            try {
                await().ignoreExceptions().atMost(Duration.ofSeconds(30)).until(() -> record(pair).state() == MirroringState.DISCONNECTED);
                for (long id = 1001; id <= 1020; id++) {
                    long v = id;
                    await().atMost(Duration.ofSeconds(30)).until(() -> TwoNodes.acknowledged(ds, "INSERT INTO t VALUES (" + v + ") ON CONFLICT DO NOTHING"));
                    aloneAcknowledged.add(id);
                }
                // Then the principal is lost while the mirror is still cut off.
                nodes.a().kill();
            } finally {
                nodes.b().proxy().heal();
            }
            try {
                await().atMost(Duration.ofSeconds(30))
                        .until(() -> ds.partnership().status().action() == QuorumRules.Action.NO_AUTOMATIC_FAILOVER);
                await().atMost(Duration.ofSeconds(30)).ignoreExceptions().until(() -> ds.partnership().forceService(true).epoch() == 2);
                for (long id = 2001; id <= 2010; id++) {
                    long v = id;
                    await().atMost(Duration.ofSeconds(30)).until(() -> TwoNodes.acknowledged(ds, "INSERT INTO t VALUES (" + v + ") ON CONFLICT DO NOTHING"));
                }
            } finally {
                nodes.a().restart();
            }
            // The old principal comes back and is made mirror of epoch 2; it still holds its extra transactions.
            Set<Long> onlyOnA;
            try (Connection a = pair.principal(); Connection b = pair.mirror()) {
                await().ignoreExceptions().atMost(Duration.ofSeconds(60))
                        .until(() -> rows(a, "SELECT role, epoch FROM lockstep.node_state").equals(List.of(List.of("mirror", 2L))));
                onlyOnA = ids(a);
                onlyOnA.removeAll(ids(b));
                assertThat(onlyOnA).containsAll(aloneAcknowledged);
                for (List<Object> r : rows(a, "SELECT epoch, seq, changes::text FROM lockstep.journal WHERE epoch = 1")) {
                    if (onlyOnA.stream().anyMatch(id -> ((String) r.get(2)).contains("\"(" + id + ")\""))) {
                        expectedKeys.add(List.of(r.get(0), r.get(1)));
                    }
                }
            }
            assertThat(expectedKeys).hasSizeGreaterThanOrEqualTo(aloneAcknowledged.size());
            assertThat(ds.partnership().resume().state()).isEqualTo(MirroringState.SYNCHRONIZING);
            // The catch-up records SYNCHRONIZED before it reports its result, which replaces an
            // earlier catch-up's: wait for a seeding one.
            await().ignoreExceptions().atMost(Duration.ofSeconds(120)).pollInterval(Duration.ofMillis(100))
                    .until(() -> record(pair).state() == MirroringState.SYNCHRONIZED
                            && ds.partnership().lastCatchUp().filter(r -> r.seeded()).isPresent());

            List<DivergentTransaction> report = ds.partnership().divergenceReport();
            assertThat(report).extracting(d -> List.<Object>of(d.epoch(), d.seq()))
                    .containsExactlyInAnyOrderElementsOf(expectedKeys);
            assertThat(report).allSatisfy(d -> {
                assertThat(d.node()).isEqualTo("node-a");
                assertThat(d.origin()).isEqualTo("node-a");
                assertThat(d.principal()).isEqualTo("node-b");
                assertThat(d.principalEpoch()).isEqualTo(2L);
                assertThat(d.gid()).startsWith("lockstep:diverge:1:");
                assertThat(d.committedAt()).isNotNull();
            });
            String images = report.stream().map(DivergentTransaction::changes).collect(Collectors.joining());
            for (long id : onlyOnA) {
                assertThat(images).contains("\"(" + id + ")\"");
            }
            assertThat(ds.partnership().lastCatchUp().orElseThrow().seeded()).isTrue();
            assertThat(ds.partnership().mirrorNeedsSeeding()).isFalse();
            VerifyReport verify = ds.partnership().verify();
            assertThat(verify.identical()).as("%s", verify).isTrue();
            assertThat(TwoNodes.acknowledgedWithRetries(ds, "INSERT INTO t VALUES (3001) ON CONFLICT DO NOTHING")).isTrue();
        }
        try (Connection a = pair.principal(); Connection b = pair.mirror()) {
            assertThat(rows(a, "SELECT id FROM t ORDER BY id")).isEqualTo(rows(b, "SELECT id FROM t ORDER BY id"));
            assertThat(ids(a)).doesNotContainAnyElementsOf(aloneAcknowledged).contains(2001L, 3001L);
            // The re-seeded node's journal no longer holds the divergent records.
            assertThat(rows(a, "SELECT epoch, seq FROM lockstep.journal WHERE epoch = 1 ORDER BY 1, 2"))
                    .doesNotContainAnyElementsOf(expectedKeys);
        }
        assertThat(witness.store().history(pair.partnership())).extracting(WitnessStore.Transition::reason)
                .anyMatch(r -> r.startsWith("mirror node-a diverged: "));
    }
}
