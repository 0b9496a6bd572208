package dev.lockstep.bench;

import dev.lockstep.LockstepConfig;
import dev.lockstep.LockstepDataSource;
import dev.lockstep.NodeConfig;
import dev.lockstep.testing.PgNode;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * Failover under load, measured: real principal, mirror and witness servers; writers commit
 * through a {@link LockstepDataSource}; the principal is killed (SIGKILL) or frozen (SIGSTOP); the
 * figure is the time from the fault to the first commit acknowledged by the new principal, and
 * the number of acknowledged transactions the new principal lacks. Prints figures, asserts nothing.
 *
 * <p>Run: {@code mvn -q test-compile exec:java -Dexec.classpathScope=test
 * -Dexec.mainClass=dev.lockstep.bench.FailoverBenchmark [-Dexec.args="--partner-timeouts 10,2 --faults kill,freeze"]}
 */
public final class FailoverBenchmark {

    private static final Duration LOAD_BEFORE_FAULT = Duration.ofSeconds(3);
    private static final Duration LOAD_AFTER_FAILOVER = Duration.ofSeconds(2);
    private static final Duration FAILOVER_LIMIT = Duration.ofSeconds(60);

    /** One measurement's setting. */
    record Scenario(String fault, Duration partnerTimeout, Duration heartbeat) {
        String label() {
            return String.format(Locale.ROOT, "%-6s partner timeout %2d s, heartbeat %4d ms", fault,
                    partnerTimeout.toSeconds(), heartbeat.toMillis());
        }
    }

    /** One measurement's figures; {@code failoverMillis} is -1 when no failover came within the limit. */
    record Result(Scenario scenario, long failoverMillis, int acknowledgedBefore, int acknowledgedAfter, int failedCommits,
                  long lost) {
    }

    private FailoverBenchmark() {
    }

    public static void main(String[] args) throws Exception {
        List<Duration> timeouts = new ArrayList<>();
        List<String> faults = new ArrayList<>(List.of("kill", "freeze"));
        int clients = 4;
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--partner-timeouts" -> {
                    for (String t : args[i + 1].split(",")) {
                        timeouts.add(Duration.ofSeconds(Long.parseLong(t.trim())));
                    }
                }
                case "--faults" -> faults = List.of(args[i + 1].split(","));
                case "--clients" -> clients = Integer.parseInt(args[i + 1]);
                default -> throw new IllegalArgumentException("unknown option " + args[i]
                        + "; options: --partner-timeouts 10,2 --faults kill,freeze --clients 4");
            }
        }
        if (timeouts.isEmpty()) {
            timeouts = List.of(Duration.ofSeconds(10), Duration.ofSeconds(2));
        }
        List<Result> results = new ArrayList<>();
        try (PgNode a = PgNode.start("node-a"); PgNode b = PgNode.start("node-b"); PgNode w = PgNode.start("witness")) {
            String witnessDb = w.createDatabase("witness");
            NodeConfig witness = NodeConfig.of("witness", w.directJdbcUrl(witnessDb), w.user(), w.password());
            for (Duration timeout : timeouts) {
                for (String fault : faults) {
                    Scenario s = new Scenario(fault, timeout, heartbeatFor(timeout));
                    Result r = run(s, a, b, witness, clients);
                    results.add(r);
                    System.out.println("failover-bench: " + describe(r));
                }
            }
        }
        System.out.println();
        System.out.println("| fault | partner timeout | heartbeat | first commit on new principal | acknowledged before / after | lost |");
        System.out.println("|---|---|---|---|---|---|");
        for (Result r : results) {
            System.out.printf(Locale.ROOT, "| %s | %d s | %d ms | %s | %d / %d | %d |%n", r.scenario().fault(),
                    r.scenario().partnerTimeout().toSeconds(), r.scenario().heartbeat().toMillis(),
                    r.failoverMillis() < 0 ? "none within " + FAILOVER_LIMIT.toSeconds() + " s" : r.failoverMillis() + " ms",
                    r.acknowledgedBefore(), r.acknowledgedAfter(), r.lost());
        }
        System.out.flush();
        System.exit(0);
    }

    /** The default heartbeat (1 s) unless the partner timeout needs a shorter one (at most a third of it). */
    private static Duration heartbeatFor(Duration partnerTimeout) {
        return partnerTimeout.toMillis() >= 3_000 ? Duration.ofSeconds(1) : Duration.ofMillis(partnerTimeout.toMillis() / 4);
    }

    private static String describe(Result r) {
        return r.scenario().label() + ": " + (r.failoverMillis() < 0 ? "no commit on the new principal within "
                + FAILOVER_LIMIT.toSeconds() + " s" : "first commit on the new principal " + r.failoverMillis()
                + " ms after the fault") + "; acknowledged " + r.acknowledgedBefore() + " before, " + r.acknowledgedAfter()
                + " after; " + r.failedCommits() + " commits failed; lost " + r.lost();
    }

    private static Result run(Scenario s, PgNode a, PgNode b, NodeConfig witness, int clients) throws Exception {
        String name = s.fault() + "_" + s.partnerTimeout().toSeconds();
        String dbA = a.createDatabase(name);
        String dbB = b.createDatabase(name);
        LockstepConfig config = LockstepConfig.builder().partnership("bench_" + name)
                .principal(NodeConfig.of("node-a", a.directJdbcUrl(dbA), a.user(), a.password()))
                .mirror(NodeConfig.of("node-b", b.directJdbcUrl(dbB), b.user(), b.password()))
                .witness(witness).partnerTimeout(s.partnerTimeout()).heartbeatInterval(s.heartbeat())
                .poolSize(clients + 2).build();
        AcknowledgingWriters writers;
        long faultNanos;
        int before;
        long failoverMillis = -1;
        try (LockstepDataSource ds = LockstepDataSource.start(config)) {
            try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
                st.execute("CREATE TABLE t (id bigint PRIMARY KEY, node text NOT NULL)");
            }
            writers = new AcknowledgingWriters(ds, clients);
            try {
                sleep(LOAD_BEFORE_FAULT);
                before = writers.acknowledged.size();
                faultNanos = System.nanoTime();
                if (s.fault().equals("kill")) {
                    a.kill();
                } else {
                    a.freeze();
                }
                try {
                    long deadline = faultNanos + FAILOVER_LIMIT.plus(s.partnerTimeout()).toNanos();
                    while (writers.firstOnNanos("node-b") == 0 && System.nanoTime() < deadline) {
                        sleep(Duration.ofMillis(20));
                    }
                    long first = writers.firstOnNanos("node-b");
                    if (first != 0) {
                        failoverMillis = (first - faultNanos) / 1_000_000;
                        sleep(LOAD_AFTER_FAILOVER);
                    }
                    writers.stop();
                } finally {
                    if (s.fault().equals("kill")) {
                        a.restart();
                    } else {
                        a.thaw();
                    }
                }
            } finally {
                writers.stop();
            }
        }
        Set<Long> onNewPrincipal = new HashSet<>();
        try (Connection c = b.connectDirect(dbB); Statement st = c.createStatement();
             ResultSet rs = st.executeQuery("SELECT id FROM t")) {
            while (rs.next()) {
                onNewPrincipal.add(rs.getLong(1));
            }
        }
        long lost = writers.acknowledged.keySet().stream().filter(id -> !onNewPrincipal.contains(id)).count();
        int total = writers.acknowledged.size();
        return new Result(s, failoverMillis, before, total - before, writers.failures.intValue(), lost);
    }

    private static void sleep(Duration d) throws InterruptedException {
        Thread.sleep(d.toMillis());
    }

}
