package dev.lockstep.metrics;

import dev.lockstep.LockstepDataSource;
import dev.lockstep.MirroringStatistics;
import dev.lockstep.Partnership;
import dev.lockstep.PartnershipStatus;
import dev.lockstep.core.MirroringState;
import dev.lockstep.core.PartnerHealth;
import dev.lockstep.core.QuorumRules;
import dev.lockstep.events.LockstepEvent;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.binder.MeterBinder;

import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.ToDoubleFunction;

/**
 * Publishes a partnership's figures to Micrometer, after SQL Server's database mirroring counters.
 * Micrometer is an optional dependency of Lockstep: only this class needs it. Every meter is
 * named under {@code lockstep.} and tagged with {@code partnership}; per-node meters also with
 * {@code node} (and {@code role} where the role is what is measured):
 *
 * <ul>
 *   <li>{@code lockstep.mirroring.state} {state}: 1 for the current mirroring state, 0 for the others</li>
 *   <li>{@code lockstep.node.role} {node, role}: 1 while the node has that role</li>
 *   <li>{@code lockstep.node.connected} {node}: 1 while this coordinator reaches the partner</li>
 *   <li>{@code lockstep.witness.connected} {node}: 1 while it reaches the witness</li>
 *   <li>{@code lockstep.quorum}: 1 while the principal may commit (it and the mirror or the witness reachable)</li>
 *   <li>{@code lockstep.failover.armed}: 1 while losing the principal would promote the mirror</li>
 *   <li>{@code lockstep.epoch}</li>
 *   <li>{@code lockstep.send.queue.records}, {@code lockstep.send.queue.bytes}, {@code lockstep.send.queue.oldest.age} (seconds)</li>
 *   <li>{@code lockstep.mirror.redo.records}: counter of journal records applied on the mirror (its rate is the redo rate)</li>
 *   <li>{@code lockstep.transactions} {path=lockstep|alone}: counter of committed mirrored transactions</li>
 *   <li>{@code lockstep.commit.latency} {path}: timer of mirrored commits</li>
 *   <li>{@code lockstep.commit.overhead}: timer of the part of each lockstep commit spent on the mirror</li>
 *   <li>{@code lockstep.indoubt.resolved} {outcome=committed|rolled_back}: counter</li>
 *   <li>{@code lockstep.failovers} {kind}: counter; {@code lockstep.failover.duration} {kind}: timer</li>
 *   <li>{@code lockstep.catchup.replayed.records}, {@code lockstep.catchup.remaining.records},
 *       {@code lockstep.catchup.time.left} (seconds, NaN when no catch-up runs)</li>
 * </ul>
 */
public final class LockstepMetrics implements MeterBinder {

    private final Partnership partnership;
    private final List<String> nodes;

    /**
     * @param dataSource the data source whose partnership to publish
     */
    public LockstepMetrics(LockstepDataSource dataSource) {
        this.partnership = dataSource.partnership();
        PartnershipStatus s = partnership.status();
        this.nodes = List.of(s.principal(), s.mirror());
    }

    @Override
    public void bindTo(MeterRegistry registry) {
        Tags base = Tags.of("partnership", partnership.name());
        bindState(registry, base);
        bindQueue(registry, base);
        bindCounters(registry, base);
        bindTimers(registry, base);
    }

    private void bindState(MeterRegistry registry, Tags base) {
        for (MirroringState state : MirroringState.values()) {
            gauge(registry, "lockstep.mirroring.state", base.and("state", state.name()), p -> p.status().state() == state ? 1 : 0,
                    "1 for the partnership's current mirroring state");
        }
        for (String node : nodes) {
            for (String role : List.of("principal", "mirror")) {
                gauge(registry, "lockstep.node.role", base.and("node", node, "role", role),
                        p -> node.equals("principal".equals(role) ? p.status().principal() : p.status().mirror()) ? 1 : 0,
                        "1 while the node has this role");
            }
            gauge(registry, "lockstep.node.connected", base.and("node", node), p -> up(health(p.status(), node)),
                    "1 while this coordinator reaches the node");
        }
        PartnershipStatus now = partnership.status();
        if (now.witnessHealth() != null) {
            gauge(registry, "lockstep.witness.connected", base, p -> up(p.status().witnessHealth()),
                    "1 while this coordinator reaches the witness");
        }
        gauge(registry, "lockstep.quorum", base, p -> quorum(p.status()), "1 while the principal may commit");
        gauge(registry, "lockstep.failover.armed", base, p -> p.status().automaticFailoverArmed() ? 1 : 0,
                "1 while losing the principal would promote the mirror");
        gauge(registry, "lockstep.epoch", base, p -> p.status().epoch(), "the epoch this coordinator commits in");
    }

    private void bindQueue(MeterRegistry registry, Tags base) {
        gauge(registry, "lockstep.send.queue.records", base, p -> p.statistics().sendQueueRecords(),
                "journal records the mirror lacks");
        Gauge.builder("lockstep.send.queue.bytes", partnership, p -> p.statistics().sendQueueBytes()).tags(base)
                .baseUnit("bytes").description("size of the journal records the mirror lacks").register(registry);
        Gauge.builder("lockstep.send.queue.oldest.age", partnership, p -> p.statistics().oldestUnsentAge().toMillis() / 1000.0)
                .tags(base).baseUnit("seconds").description("age of the oldest journal record the mirror lacks").register(registry);
        gauge(registry, "lockstep.catchup.replayed.records", base, p -> p.statistics().catchUpReplayed(),
                "records the current or last catch-up that replayed any has replayed");
        gauge(registry, "lockstep.catchup.remaining.records", base,
                p -> p.status().state() == MirroringState.SYNCHRONIZING ? p.statistics().sendQueueRecords() : 0,
                "records a catch-up under way has still to replay");
        Gauge.builder("lockstep.catchup.time.left", partnership, p -> {
            var left = p.statistics().catchUpEstimate();
            return left == null ? Double.NaN : left.toMillis() / 1000.0;
        }).tags(base).baseUnit("seconds").description("estimated time a catch-up under way has left").register(registry);
    }

    private void bindCounters(MeterRegistry registry, Tags base) {
        counter(registry, "lockstep.mirror.redo.records", base, p -> p.statistics().mirrorAppliedRecords(),
                "journal records applied on the mirror");
        counter(registry, "lockstep.transactions", base.and("path", "lockstep"), p -> p.statistics().transactionsMirrored(),
                "mirrored transactions committed on both nodes");
        counter(registry, "lockstep.transactions", base.and("path", "alone"), p -> p.statistics().transactionsAlone(),
                "mirrored transactions the principal committed alone (exposed)");
        counter(registry, "lockstep.indoubt.resolved", base.and("outcome", "committed"), p -> p.statistics().inDoubtCommitted(),
                "in-doubt transactions committed");
        counter(registry, "lockstep.indoubt.resolved", base.and("outcome", "rolled_back"), p -> p.statistics().inDoubtRolledBack(),
                "in-doubt transactions rolled back");
        for (LockstepEvent.FailoverKind kind : LockstepEvent.FailoverKind.values()) {
            counter(registry, "lockstep.failovers", base.and("kind", kind.name().toLowerCase(java.util.Locale.ROOT)),
                    p -> p.statistics().failovers().getOrDefault(kind, 0L), "role changes made or followed");
        }
    }

    private void bindTimers(MeterRegistry registry, Tags base) {
        Timer lockstep = Timer.builder("lockstep.commit.latency").tags(base.and("path", "lockstep"))
                .description("time of a mirrored commit").register(registry);
        Timer alone = Timer.builder("lockstep.commit.latency").tags(base.and("path", "alone"))
                .description("time of a commit on the principal alone").register(registry);
        Timer overhead = Timer.builder("lockstep.commit.overhead").tags(base)
                .description("part of a lockstep commit spent on the mirror").register(registry);
        partnership.addCommitTimings((committedAlone, commitNanos, mirrorNanos) -> {
            (committedAlone ? alone : lockstep).record(commitNanos, TimeUnit.NANOSECONDS);
            if (!committedAlone) {
                overhead.record(mirrorNanos, TimeUnit.NANOSECONDS);
            }
        });
        Map<LockstepEvent.FailoverKind, Timer> durations = new EnumMap<>(LockstepEvent.FailoverKind.class);
        for (LockstepEvent.FailoverKind kind : LockstepEvent.FailoverKind.values()) {
            durations.put(kind, Timer.builder("lockstep.failover.duration")
                    .tags(base.and("kind", kind.name().toLowerCase(java.util.Locale.ROOT)))
                    .description("from losing the old principal (automatic) or the request (planned, forced) to serving").register(registry));
        }
        partnership.addListener(event -> {
            if (event instanceof LockstepEvent.Failover f) {
                durations.get(f.kind()).record(f.duration());
            }
        });
    }

    private void gauge(MeterRegistry registry, String name, Tags tags, ToDoubleFunction<Partnership> value, String description) {
        Gauge.builder(name, partnership, value).tags(tags).description(description).register(registry);
    }

    private void counter(MeterRegistry registry, String name, Tags tags, ToDoubleFunction<Partnership> value, String description) {
        FunctionCounter.builder(name, partnership, value).tags(tags).description(description).register(registry);
    }

    private static PartnerHealth health(PartnershipStatus s, String node) {
        return node.equals(s.principal()) ? s.principalHealth() : s.mirrorHealth();
    }

    private static double up(PartnerHealth h) {
        return h == null || h == PartnerHealth.UP ? 1 : 0;
    }

    private static double quorum(PartnershipStatus s) {
        if (s.action() == QuorumRules.Action.STOP_WRITES || up(s.principalHealth()) == 0) {
            return 0;
        }
        return up(s.mirrorHealth()) == 1 || (s.witnessHealth() != null && up(s.witnessHealth()) == 1) ? 1 : 0;
    }
}
