package dev.lockstep.health;

import dev.lockstep.core.PartnerHealth;
import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import io.github.resilience4j.circuitbreaker.CircuitBreakerConfig;

import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;

/**
 * Probes every node on its own schedule (a frozen node never delays the others) and reports each
 * one's health: {@link PartnerHealth#FAILED} at once on a refused or reset connection, after the
 * partner timeout of silence otherwise. Each node also has a circuit breaker that opens after
 * three failed probes in a row; other components may consult it to fail fast.
 */
public final class FailureDetector implements AutoCloseable {

    /** Told whenever a node's health changes. Called on a probing thread; must not block. */
    @FunctionalInterface
    public interface Listener {
        /**
         * @param node   the node
         * @param before its health before
         * @param after  its health now
         */
        void healthChanged(String node, PartnerHealth before, PartnerHealth after);
    }

    private static final class Watch {
        final NodeProbe probe;
        final CircuitBreaker breaker;
        volatile long lastAnswerNanos;
        volatile ProbeResult last;
        volatile String incarnation;
        volatile PartnerHealth reported;
        ScheduledFuture<?> schedule;

        Watch(NodeProbe probe, CircuitBreaker breaker, long startNanos) {
            this.probe = probe;
            this.breaker = breaker;
            this.lastAnswerNanos = startNanos;
        }
    }

    private final Map<String, Watch> watches = new LinkedHashMap<>();
    private final Duration interval;
    private final long partnerTimeoutMillis;
    private final LongSupplier nanoTime;
    private final ScheduledExecutorService scheduler;
    private final Listener listener;

    /**
     * @param probes         one probe per node
     * @param interval       time between two probes of a node
     * @param partnerTimeout how long a node may be silent before it counts as failed
     * @param nanoTime       monotonic clock
     * @param scheduler      runs the probes; needs a thread per node
     * @param listener       told of health changes
     */
    public FailureDetector(List<NodeProbe> probes, Duration interval, Duration partnerTimeout, LongSupplier nanoTime,
                           ScheduledExecutorService scheduler, Listener listener) {
        this.interval = interval;
        this.partnerTimeoutMillis = partnerTimeout.toMillis();
        this.nanoTime = nanoTime;
        this.scheduler = scheduler;
        this.listener = listener;
        CircuitBreakerConfig breakerConfig = CircuitBreakerConfig.custom()
                .slidingWindowType(CircuitBreakerConfig.SlidingWindowType.COUNT_BASED)
                .slidingWindowSize(3)
                .minimumNumberOfCalls(3)
                .failureRateThreshold(100)
                .waitDurationInOpenState(interval)
                .permittedNumberOfCallsInHalfOpenState(1)
                .build();
        long now = nanoTime.getAsLong();
        for (NodeProbe p : probes) {
            watches.put(p.node(), new Watch(p, CircuitBreaker.of("lockstep-" + p.node(), breakerConfig), now));
        }
    }

    /** Starts probing. */
    public synchronized void start() {
        for (Watch w : watches.values()) {
            w.schedule = scheduler.scheduleWithFixedDelay(() -> probe(w), 0, interval.toMillis(), TimeUnit.MILLISECONDS);
        }
    }

    /**
     * A node's health now.
     *
     * @param node the node
     * @return its health; SUSPECT until its first probe answered
     */
    public PartnerHealth health(String node) {
        Watch w = watch(node);
        ProbeResult last = w.last;
        long silentMillis = silentMillis(node);
        return PartnerHealth.of(last != null && last.ok(), last != null && last.hardFailure(), silentMillis, partnerTimeoutMillis);
    }

    /**
     * How long since the node last answered a probe.
     *
     * @param node the node
     * @return milliseconds, by the detector's monotonic clock
     */
    public long silentMillis(String node) {
        return (nanoTime.getAsLong() - watch(node).lastAnswerNanos) / 1_000_000;
    }

    /**
     * Probes the node now, in the background, besides its schedule: for when a caller saw its
     * link to the node break and the next heartbeat is up to an interval away.
     *
     * @param node the node
     */
    public void probeSoon(String node) {
        Watch w = watch(node);
        try {
            scheduler.execute(() -> probe(w));
        } catch (java.util.concurrent.RejectedExecutionException e) {
            // Shutting down.
        }
    }

    /** The node's circuit breaker. */
    public CircuitBreaker breaker(String node) {
        return watch(node).breaker;
    }

    /**
     * The node's incarnation (server start time and database oid), as its latest answer said;
     * null before it first answered. A new value means that it restarted, or its database was
     * replaced, even if no probe saw it down.
     *
     * @param node node name
     * @return the incarnation as the node reports it, or null
     */
    public String incarnation(String node) {
        return watch(node).incarnation;
    }

    /** What the node's latest probe saw, or null before the first. */
    public ProbeResult lastProbe(String node) {
        return watch(node).last;
    }

    private Watch watch(String node) {
        Watch w = watches.get(node);
        if (w == null) {
            throw new IllegalArgumentException("no probe for node " + node + "; probed: " + watches.keySet());
        }
        return w;
    }

    private void probe(Watch w) {
        long start = nanoTime.getAsLong();
        ProbeResult result;
        if (w.breaker.tryAcquirePermission()) {
            result = w.probe.probe();
            long took = nanoTime.getAsLong() - start;
            if (result.ok()) {
                w.breaker.onSuccess(took, TimeUnit.NANOSECONDS);
            } else {
                w.breaker.onError(took, TimeUnit.NANOSECONDS, new ProbeFailure(result.detail()));
            }
        } else {
            ProbeResult previous = w.last;
            result = new ProbeResult(false, previous != null && previous.hardFailure(), "circuit breaker open");
        }
        if (result.ok()) {
            w.lastAnswerNanos = nanoTime.getAsLong();
            if (result.incarnation() != null) {
                w.incarnation = result.incarnation();
            }
        }
        w.last = result;
        report(w);
    }

    private void report(Watch w) {
        PartnerHealth now = health(w.probe.node());
        PartnerHealth before = w.reported;
        w.reported = now;
        if (before != now) {
            try {
                listener.healthChanged(w.probe.node(), before, now);
            } catch (RuntimeException e) {
                // A failing listener must not stop the probing.
            }
        }
    }

    /** Stops probing and closes the probes' connections. */
    @Override
    public synchronized void close() {
        for (Watch w : watches.values()) {
            if (w.schedule != null) {
                w.schedule.cancel(true);
            }
            w.probe.close();
        }
    }

    /** Recorded by the circuit breaker for a failed probe. */
    static final class ProbeFailure extends Exception {
        ProbeFailure(String detail) {
            super(detail, null, false, false);
        }
    }
}
