package dev.lockstep.cli;

import dev.lockstep.LockstepConfig;
import dev.lockstep.LockstepDataSource;
import dev.lockstep.NodeConfig;
import dev.lockstep.PartnershipStatus;
import dev.lockstep.VerifyReport;
import dev.lockstep.core.MirroringState;
import dev.lockstep.events.LockstepEvent;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

/**
 * {@code demo}, the main job: three PostgreSQL servers (principal, mirror, witness), a bank of
 * transfers written through a {@link LockstepDataSource}, the principal SIGKILLed, the automatic
 * failover, the old principal restarted, its rejoin as mirror and catch-up to SYNCHRONIZED, and a
 * summary: transfers acknowledged, lost, failover time and verify result, plus an HTML report.
 * With {@code --principal/--mirror/--witness} it runs on external servers for {@code --seconds}
 * and reports the faults others cause. Every line it prints starts with {@code demo:}.
 */
public final class DemoCommand {

    /** The options {@code demo} accepts. */
    public static final Set<String> OPTIONS = Set.of("clients", "seed", "phase-seconds", "report", "principal", "mirror",
            "witness", "user", "password", "seconds");

    static final String PARTNERSHIP = "demo";
    private static final List<String> EMBEDDED_NODES = List.of("node-a", "node-b", "witness");
    private static final Duration FAILOVER_LIMIT = Duration.ofSeconds(60);
    private static final Duration REJOIN_LIMIT = Duration.ofSeconds(120);
    private static final long SAMPLE_MILLIS = 500;

    /**
     * @param clients      client threads
     * @param seed         seeds the random transfers
     * @param phaseSeconds how long each phase runs: before the kill, after the failover, after the rejoin
     * @param report       where the HTML report goes
     * @param principal    external principal URL, or null for embedded servers
     * @param mirror       external mirror URL
     * @param witness      external witness URL
     * @param user         user for the external servers
     * @param password     password for the external servers
     * @param seconds      how long to run on external servers
     */
    public record Options(int clients, long seed, int phaseSeconds, Path report, String principal, String mirror,
                          String witness, String user, String password, int seconds) {

        /** Reads the options; the three URLs come together or not at all. */
        public static Options from(Args args) {
            Options o = new Options(args.integer("clients", 8, 1, 64), args.integer("seed", 42, 0, Integer.MAX_VALUE),
                    args.integer("phase-seconds", 4, 1, 600), Path.of(args.string("report", "lockstep-demo-report.html")),
                    args.string("principal", null), args.string("mirror", null), args.string("witness", null),
                    args.string("user", "postgres"), args.string("password", ""), args.integer("seconds", 60, 1, 86_400));
            int urls = (o.principal == null ? 0 : 1) + (o.mirror == null ? 0 : 1) + (o.witness == null ? 0 : 1);
            if (urls != 0 && urls != 3) {
                throw new Args.UsageException("demo: give --principal, --mirror and --witness together (external servers) or none");
            }
            return o;
        }

        /** Embedded servers with the given phase length, clients and report file. */
        public static Options embedded(int clients, int phaseSeconds, Path report) {
            return new Options(clients, 42, phaseSeconds, report, null, null, null, "postgres", "", 60);
        }

        boolean external() {
            return principal != null;
        }
    }

    /**
     * What the demo found.
     *
     * @param acknowledged    transfers whose commit was acknowledged
     * @param lost            acknowledged transfers missing from the principal at the end
     * @param failedAttempts  transactions that failed and were tried again
     * @param failovers       role changes seen
     * @param failoverMillis  from the kill to the first commit on the new principal (embedded), or the
     *                        failover's own duration (external); NaN when none happened
     * @param rejoined        whether the partnership was SYNCHRONIZED again after the failover
     * @param verifyIdentical {@code partnership().verify().identical()} at the end
     * @param balancesKept    whether the total balance on both nodes is what it was at the start
     * @param report          the HTML report
     * @param faultInjected   whether the demo killed the principal itself (embedded servers)
     */
    public record Summary(long acknowledged, long lost, long failedAttempts, int failovers, double failoverMillis, boolean rejoined,
                          boolean verifyIdentical, boolean balancesKept, Path report, boolean faultInjected) {

        /**
         * 0 when nothing was lost and the nodes are identical (and, when the demo killed the
         * principal itself, the mirror took over and the old principal rejoined), 1 otherwise.
         */
        public int exitCode() {
            boolean failedOver = !faultInjected || (failovers > 0 && rejoined);
            return lost == 0 && verifyIdentical && balancesKept && failedOver ? 0 : 1;
        }
    }

    private final Options options;
    private final PrintStream out;
    private final List<DemoReport.Sample> samples = new CopyOnWriteArrayList<>();
    private final List<DemoReport.Mark> marks = new CopyOnWriteArrayList<>();
    private final List<LockstepEvent.Failover> failovers = new CopyOnWriteArrayList<>();
    private long startNanos;

    /**
     * @param options what to run
     * @param out     where the lines go
     */
    public DemoCommand(Options options, PrintStream out) {
        this.options = options;
        this.out = out;
    }

    /** Runs the demo; embedded servers are stopped before it returns, also on failure. */
    public Summary run() throws IOException, SQLException, InterruptedException {
        try (DemoCluster cluster = cluster()) {
            LockstepConfig config = LockstepConfig.builder()
                    .partnership(PARTNERSHIP)
                    .principal(cluster.principal())
                    .mirror(cluster.mirror())
                    .witness(cluster.witness())
                    .poolSize(options.clients() + 2)
                    .partnerTimeout(Duration.ofSeconds(5))
                    .heartbeatInterval(Duration.ofMillis(500))
                    .remoteCallTimeout(Duration.ofSeconds(2))
                    .connectTimeout(Duration.ofSeconds(2))
                    .inDoubtGrace(Duration.ofSeconds(10))
                    .resolverInterval(Duration.ofSeconds(1))
                    .listener(this::onEvent)
                    .build();
            try (LockstepDataSource ds = LockstepDataSource.start(config)) {
                PartnershipStatus s = ds.partnership().status();
                out.println("demo: partnership " + PARTNERSHIP + " at epoch " + s.epoch() + ": principal " + s.principal()
                        + ", mirror " + s.mirror() + ", witness " + cluster.witness().name() + ", " + s.state());
                TransferWorkload.createSchema(ds);
                out.println("demo: tables " + ds.partnership().attachedTables() + " attached; " + options.clients()
                        + " clients start transferring");
                startNanos = System.nanoTime();
                ScheduledExecutorService sampler = Executors.newSingleThreadScheduledExecutor(r -> {
                    Thread t = new Thread(r, "demo-sampler");
                    t.setDaemon(true);
                    return t;
                });
                try (TransferWorkload workload = TransferWorkload.start(ds, options.clients(), options.seed())) {
                    sampler.scheduleAtFixedRate(new Sampler(ds, workload), SAMPLE_MILLIS, SAMPLE_MILLIS, TimeUnit.MILLISECONDS);
                    double failoverMillis = cluster.injectsFaults() ? killAndRejoin(cluster, ds, workload) : runExternal();
                    workload.stop(Duration.ofSeconds(30));
                    awaitSynchronized(ds);
                    sampler.shutdownNow();
                    return summarise(cluster, ds, workload, failoverMillis);
                } finally {
                    sampler.shutdownNow();
                }
            }
        }
    }

    private DemoCluster cluster() {
        if (options.external()) {
            out.println("demo: external servers " + options.principal() + ", " + options.mirror() + ", witness " + options.witness());
            return DemoCluster.external(NodeConfig.of("principal", options.principal(), options.user(), options.password()),
                    NodeConfig.of("mirror", options.mirror(), options.user(), options.password()),
                    NodeConfig.of("witness", options.witness(), options.user(), options.password()));
        }
        out.println("demo: starting embedded PostgreSQL servers " + EMBEDDED_NODES);
        return DemoCluster.embedded(EMBEDDED_NODES);
    }

    /** Embedded: kill the principal, time the failover, restart it and wait for its rejoin. */
    private double killAndRejoin(DemoCluster cluster, LockstepDataSource ds, TransferWorkload workload) throws InterruptedException {
        pace(options.phaseSeconds());
        String victim = ds.partnership().status().principal();
        cluster.kill(victim);
        long killed = System.nanoTime();
        workload.markFault(killed);
        mark("principal " + victim + " killed (SIGKILL)");
        out.println("demo: principal " + victim + " SIGKILLed at t=" + seconds(killed));
        boolean served = waitFor(FAILOVER_LIMIT, () -> workload.firstAckAfterFault() != 0);
        double failoverMillis = served ? (workload.firstAckAfterFault() - killed) / 1e6 : Double.NaN;
        if (served) {
            out.println(String.format(Locale.ROOT, "demo: failover: %s serves as principal at epoch %d; first commit %.0f ms after"
                    + " the kill", ds.partnership().status().principal(), ds.partnership().epoch(), failoverMillis));
            mark("first commit on " + ds.partnership().status().principal());
        } else {
            out.println("demo: no failover within " + FAILOVER_LIMIT.toSeconds() + " s; last error: " + workload.lastError());
        }
        pace(options.phaseSeconds());
        cluster.restart(victim);
        mark(victim + " restarted");
        out.println("demo: " + victim + " restarted; it should rejoin as mirror and catch up");
        boolean rejoined = waitFor(REJOIN_LIMIT, () -> {
            PartnershipStatus s = ds.partnership().status();
            return s.mirror().equals(victim) && s.state() == MirroringState.SYNCHRONIZED;
        });
        if (rejoined) {
            mark(victim + " SYNCHRONIZED as mirror");
            out.println("demo: " + victim + " rejoined as mirror: SYNCHRONIZED at t=" + seconds(System.nanoTime())
                    + ds.partnership().lastCatchUp().map(c -> String.format(Locale.ROOT, " (%d records replayed, cut-over %.1f ms)",
                    c.replayed(), c.cutOverMillis())).orElse(""));
        } else {
            out.println("demo: " + victim + " did not reach SYNCHRONIZED within " + REJOIN_LIMIT.toSeconds() + " s");
        }
        pace(options.phaseSeconds());
        return failoverMillis;
    }

    /** External: the workload runs for the given time; faults come from outside and show as events. */
    private double runExternal() throws InterruptedException {
        out.println("demo: running " + options.seconds() + " s; kill the principal from outside to see the failover");
        pace(options.seconds());
        return failovers.isEmpty() ? Double.NaN : failovers.get(0).duration().toNanos() / 1e6;
    }

    /** A mirror still catching up when the writes stop gets there quickly without them. */
    private void awaitSynchronized(LockstepDataSource ds) throws InterruptedException {
        if (ds.partnership().status().state() == MirroringState.SYNCHRONIZED) {
            return;
        }
        out.println("demo: workload stopped; waiting for " + ds.partnership().status().mirror() + " to reach SYNCHRONIZED");
        if (waitFor(REJOIN_LIMIT, () -> ds.partnership().status().state() == MirroringState.SYNCHRONIZED)) {
            mark(ds.partnership().status().mirror() + " SYNCHRONIZED as mirror");
        }
    }

    private Summary summarise(DemoCluster cluster, LockstepDataSource ds, TransferWorkload workload, double failoverMillis)
            throws SQLException, InterruptedException, IOException {
        PartnershipStatus status = ds.partnership().status();
        Set<UUID> acknowledged = workload.acknowledgedTokens();
        long lost;
        boolean balancesKept = true;
        try (Connection p = cluster.connect(status.principal()); Connection m = cluster.connect(status.mirror())) {
            Set<UUID> present = tokens(p);
            lost = acknowledged.stream().filter(token -> !present.contains(token)).count();
            for (Connection c : List.of(p, m)) {
                long total = NodeInspector.queryLong(c, "SELECT sum(balance) FROM accounts");
                balancesKept &= total == TransferWorkload.ACCOUNTS * TransferWorkload.OPENING_BALANCE;
            }
        }
        boolean rejoined = status.state() == MirroringState.SYNCHRONIZED;
        VerifyReport verify = rejoined ? ds.partnership().verify() : null;
        boolean identical = verify != null && verify.identical();
        Summary summary = new Summary(acknowledged.size(), lost, workload.failedCount(), failovers.size(), failoverMillis, rejoined,
                identical, balancesKept, options.report().toAbsolutePath(), cluster.injectsFaults());
        Map<String, String> table = new LinkedHashMap<>();
        table.put("transfers acknowledged", Long.toString(summary.acknowledged()));
        table.put("acknowledged but lost", Long.toString(summary.lost()));
        table.put("failed attempts (retried)", Long.toString(summary.failedAttempts()));
        table.put("failovers", Integer.toString(summary.failovers()));
        table.put("failover time", Double.isNaN(failoverMillis) ? "none" : String.format(Locale.ROOT, "%.0f ms", failoverMillis));
        table.put("partnership at the end", status.principal() + " principal, " + status.mirror() + " mirror, " + status.state()
                + ", epoch " + status.epoch());
        table.put("verify", identical ? "identical" : "NOT identical" + (verify == null ? " (not SYNCHRONIZED)" : ": " + verify));
        table.put("total balance kept on both nodes", Boolean.toString(balancesKept));
        DemoReport.write(options.report(), samples, marks, table);
        table.forEach((k, v) -> out.println("demo: " + k + ": " + v));
        out.println(String.format(Locale.ROOT, "demo: summary acknowledged=%d lost=%d failovers=%d failover_ms=%.0f rejoined=%s"
                        + " verify=%s report=%s", summary.acknowledged(), summary.lost(), summary.failovers(), failoverMillis,
                rejoined, identical ? "identical" : "different", summary.report()));
        return summary;
    }

    private static Set<UUID> tokens(Connection c) throws SQLException {
        Set<UUID> tokens = new HashSet<>();
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT token FROM transfers")) {
            while (rs.next()) {
                tokens.add(rs.getObject(1, UUID.class));
            }
        }
        return tokens;
    }

    private void onEvent(LockstepEvent event) {
        if (event instanceof LockstepEvent.Failover f) {
            failovers.add(f);
            mark("failover (" + f.kind().name().toLowerCase(Locale.ROOT) + ") to " + f.principal() + ", epoch " + f.toEpoch());
        } else if (event instanceof LockstepEvent.MirroringStateChanged c) {
            out.println("demo: event: mirroring state " + c.from() + " -> " + c.to() + " at epoch " + c.epoch());
        } else if (event instanceof LockstepEvent.NodeHealthChanged h && h.from() != null) {
            out.println("demo: event: node " + h.node() + " " + h.from() + " -> " + h.to());
        } else if (event instanceof LockstepEvent.CatchUpFinished c) {
            out.println(String.format(Locale.ROOT, "demo: event: catch-up finished: %d records replayed, new commits held %.1f ms",
                    c.result().replayed(), c.result().cutOverMillis()));
        }
    }

    private void mark(String label) {
        double t = startNanos == 0 ? 0 : (System.nanoTime() - startNanos) / 1e9;
        marks.add(new DemoReport.Mark(t, label));
    }

    private String seconds(long nanos) {
        return String.format(Locale.ROOT, "%.1f s", (nanos - startNanos) / 1e9);
    }

    private static void pace(int seconds) throws InterruptedException {
        Thread.sleep(seconds * 1000L);
    }

    private static boolean waitFor(Duration limit, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + limit.toNanos();
        while (System.nanoTime() - deadline < 0) {
            if (condition.getAsBoolean()) {
                return true;
            }
            Thread.sleep(20);
        }
        return condition.getAsBoolean();
    }

    /** Takes a sample every half second and prints a progress line every second. */
    private final class Sampler implements Runnable {
        private final LockstepDataSource ds;
        private final TransferWorkload workload;
        private long lastCount;
        private long lastNanos = startNanos;
        private int ticks;

        Sampler(LockstepDataSource ds, TransferWorkload workload) {
            this.ds = ds;
            this.workload = workload;
        }

        @Override
        public void run() {
            long now = System.nanoTime();
            long count = workload.acknowledgedCount();
            double rate = (count - lastCount) / Math.max(1e-3, (now - lastNanos) / 1e9);
            lastCount = count;
            lastNanos = now;
            PartnershipStatus s = ds.partnership().status();
            samples.add(new DemoReport.Sample((now - startNanos) / 1e9, rate, s.state().name(), s.epoch(), s.principal()));
            if (++ticks % 2 == 0) {
                out.println(String.format(Locale.ROOT, "demo: t=%5.1fs acknowledged=%d tx/s=%.0f principal=%s epoch=%d state=%s"
                                + " send_queue=%d", (now - startNanos) / 1e9, count, rate, s.principal(), s.epoch(), s.state(),
                        ds.partnership().statistics().sendQueueRecords()));
            }
        }
    }
}
