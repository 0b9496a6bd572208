package dev.lockstep.it;

import dev.lockstep.LockstepConfig;
import dev.lockstep.LockstepDataSource;
import dev.lockstep.commit.CommitObserver;
import dev.lockstep.core.CommitStep;
import dev.lockstep.core.MirroringState;
import dev.lockstep.core.PartnerHealth;
import dev.lockstep.events.LockstepEvent;
import dev.lockstep.events.WarningThresholds;
import dev.lockstep.metrics.LockstepMetrics;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.junit.jupiter.api.Test;

import java.sql.Connection;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/**
 * Every named meter exists and moves as the partnership goes through a lost mirror, its catch-up,
 * an in-doubt transaction and an automatic failover; listeners hear each change, and one that
 * throws breaks nothing.
 */
class MetricsAndEventsTest extends OnTwoNodesAndWitness {

    private static final Duration WAIT = Duration.ofSeconds(60);
    private static final Set<String> METER_NAMES = Set.of("lockstep.mirroring.state", "lockstep.node.role", "lockstep.node.connected",
            "lockstep.witness.connected", "lockstep.quorum", "lockstep.failover.armed", "lockstep.epoch",
            "lockstep.send.queue.records", "lockstep.send.queue.bytes", "lockstep.send.queue.oldest.age",
            "lockstep.mirror.redo.records", "lockstep.transactions", "lockstep.commit.latency", "lockstep.commit.overhead",
            "lockstep.indoubt.resolved", "lockstep.failovers", "lockstep.failover.duration", "lockstep.catchup.replayed.records",
            "lockstep.catchup.remaining.records", "lockstep.catchup.time.left");

    private final List<LockstepEvent> events = new CopyOnWriteArrayList<>();
    private final AtomicInteger failingListenerCalls = new AtomicInteger();
    private final SimpleMeterRegistry registry = new SimpleMeterRegistry();

    @Test
    void metersAndEventsFollowMirrorLossCatchUpInDoubtAndFailover() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("metrics");
        AtomicBoolean crashOnce = new AtomicBoolean();
        LockstepConfig config = pair.config().witness(witness.config()).partnerTimeout(Duration.ofSeconds(2))
                .heartbeatInterval(Duration.ofMillis(200))
                .warningThresholds(new WarningThresholds(20, Duration.ofHours(1), Duration.ofSeconds(10)))
                .listener(e -> {
                    failingListenerCalls.incrementAndGet();
                    throw new IllegalStateException("a listener that always fails");
                })
                .listener(events::add)
                .commitObserver((step, gid) -> {
                    if (step == CommitStep.MIRROR_COMMITTED && crashOnce.getAndSet(false)) {
                        throw new CommitObserver.SimulatedCrash("test: coordinator dies with the transaction committed on the mirror, prepared on the principal");
                    }
                })
                .build();
        try (LockstepDataSource ds = LockstepDataSource.start(config)) {
            new LockstepMetrics(ds).bindTo(registry);
            assertThat(registry.getMeters().stream().map(m -> m.getId().getName()).collect(Collectors.toSet()))
                    .containsAll(METER_NAMES);
            assertThat(gauge("lockstep.mirroring.state", "state", "SYNCHRONIZED")).isEqualTo(1);
            assertThat(gauge("lockstep.node.role", "node", "node-a", "role", "principal")).isEqualTo(1);
            assertThat(gauge("lockstep.epoch")).isEqualTo(1);
            assertThat(TwoNodes.acknowledged(ds, "CREATE TABLE t (id bigint PRIMARY KEY)")).isTrue();

            try (Writers writers = Writers.start(ds, 2)) {
                await().atMost(WAIT).until(() -> writers.count() >= 100);
                assertThat(counter("lockstep.transactions", "path", "lockstep")).isGreaterThanOrEqualTo(100);
                assertThat(registry.get("lockstep.commit.latency").tag("path", "lockstep").timer().count()).isGreaterThanOrEqualTo(100);
                assertThat(registry.get("lockstep.commit.overhead").timer().count()).isGreaterThanOrEqualTo(100);
                assertThat(counter("lockstep.mirror.redo.records")).isGreaterThanOrEqualTo(100);

                // Mirror lost: DISCONNECTED, commits alone, the send queue grows past its threshold.
                nodes.b().kill();
                try {
                    await().atMost(WAIT).until(() -> gauge("lockstep.mirroring.state", "state", "DISCONNECTED") == 1);
                    assertThat(gauge("lockstep.node.connected", "node", "node-b")).isZero();
                    assertThat(gauge("lockstep.quorum")).isEqualTo(1);
                    await().atMost(WAIT).until(() -> gauge("lockstep.send.queue.records") > 20
                            && counter("lockstep.transactions", "path", "alone") > 20);
                    assertThat(gauge("lockstep.send.queue.bytes")).isPositive();
                    assertThat(registry.get("lockstep.commit.latency").tag("path", "alone").timer().count()).isPositive();
                } finally {
                    nodes.b().restart();
                }
                // Back: catch-up replays the queue and the partnership is SYNCHRONIZED again.
                await().atMost(WAIT).until(() -> gauge("lockstep.mirroring.state", "state", "SYNCHRONIZED") == 1
                        && gauge("lockstep.send.queue.records") == 0);
                assertThat(gauge("lockstep.catchup.replayed.records")).isPositive();
                writers.stop();
            }

            // A coordinator "crash" leaves a transaction prepared on the principal and committed on
            // the mirror; resolution commits it.
            crashOnce.set(true);
            assertThatThrownBy(() -> {
                try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
                    st.executeUpdate("INSERT INTO t (id) VALUES (-1)");
                }
            }).isInstanceOf(CommitObserver.SimulatedCrash.class);
            await().atMost(WAIT).until(() -> counter("lockstep.indoubt.resolved", "outcome", "committed") >= 1);

            // Principal lost: automatic failover to node-b.
            nodes.a().kill();
            try {
                await().atMost(WAIT).until(() -> gauge("lockstep.epoch") == 2);
                assertThat(counter("lockstep.failovers", "kind", "automatic")).isEqualTo(1);
                // The timer hears of the failover through the events, which arrive on their own thread.
                await().atMost(WAIT).until(() -> registry.get("lockstep.failover.duration").tag("kind", "automatic").timer().count() == 1);
                assertThat(gauge("lockstep.node.role", "node", "node-b", "role", "principal")).isEqualTo(1);
                assertThat(gauge("lockstep.node.role", "node", "node-a", "role", "principal")).isZero();
                assertThat(TwoNodes.acknowledged(ds, "INSERT INTO t (id) VALUES (-2)")).isTrue();
            } finally {
                nodes.a().restart();
            }
            await().atMost(WAIT).until(() -> gauge("lockstep.mirroring.state", "state", "SYNCHRONIZED") == 1);
        }

        await().atMost(WAIT).untilAsserted(() -> assertThat(events).anySatisfy(e -> assertThat(e)
                .isInstanceOfSatisfying(LockstepEvent.Failover.class, f -> {
                    assertThat(f.kind()).isEqualTo(LockstepEvent.FailoverKind.AUTOMATIC);
                    assertThat(f.toEpoch()).isEqualTo(2);
                    assertThat(f.principal()).isEqualTo("node-b");
                })));
        assertThat(events).anySatisfy(e -> assertThat(e).isInstanceOfSatisfying(LockstepEvent.MirroringStateChanged.class,
                c -> assertThat(List.of(c.epoch(), c.from(), c.to())).isEqualTo(List.of(1L, MirroringState.SYNCHRONIZED,
                        MirroringState.DISCONNECTED))));
        assertThat(events).anySatisfy(e -> assertThat(e).isInstanceOfSatisfying(LockstepEvent.NodeHealthChanged.class,
                h -> assertThat(List.of(h.node(), h.to())).isEqualTo(List.of("node-b", PartnerHealth.FAILED))));
        assertThat(events).anySatisfy(e -> assertThat(e).isInstanceOf(LockstepEvent.CatchUpFinished.class));
        assertThat(events).anySatisfy(e -> assertThat(e).isInstanceOfSatisfying(LockstepEvent.InDoubtResolved.class,
                r -> assertThat(r.committed()).isPositive()));
        assertThat(events).anySatisfy(e -> assertThat(e).isInstanceOfSatisfying(LockstepEvent.ThresholdCrossed.class, t -> {
            assertThat(t.threshold()).isEqualTo(LockstepEvent.Threshold.SEND_QUEUE_RECORDS);
            assertThat(t.exceeded()).isTrue();
            assertThat(t.value()).isGreaterThan(20);
        }));
        assertThat(events).anySatisfy(e -> assertThat(e).isInstanceOfSatisfying(LockstepEvent.ThresholdCrossed.class,
                t -> assertThat(t.exceeded()).isFalse()));
        assertThat(failingListenerCalls.get()).isEqualTo(events.size());
    }

    private double gauge(String name, String... tags) {
        return registry.get(name).tags(tags).gauge().value();
    }

    private double counter(String name, String... tags) {
        return registry.get(name).tags(tags).functionCounter().count();
    }
}
