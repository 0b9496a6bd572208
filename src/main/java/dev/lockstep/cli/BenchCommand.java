package dev.lockstep.cli;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import dev.lockstep.CaptureMode;
import dev.lockstep.LockstepConfig;
import dev.lockstep.LockstepDataSource;
import dev.lockstep.VerifyReport;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * {@code bench}: pgbench's TPC-B-like transaction ({@link TpcbWorkload}) for a fixed time per
 * client count, directly against one PostgreSQL node and through a Lockstep partnership of two,
 * each on embedded servers it starts; or, with {@code --url}, directly against any JDBC URL.
 * Result lines start with {@code bench target=}, {@code bench ratio} and {@code verify}.
 */
public final class BenchCommand {

    /** The options {@code bench} accepts. */
    public static final Set<String> OPTIONS = Set.of("clients", "seconds", "scale", "target", "url", "user", "password",
            "capture", "seed", "warmup");

    private static final String DIRECT_NODE = "bench-direct";
    private static final String TWO_NODE_FIRST = "bench-two-a";
    private static final String TWO_NODE_SECOND = "bench-two-b";
    private static final String FLOOR_SQL = "/dev/lockstep/sql/bench/capture_floor.sql";
    private static final String PRINCIPAL_NODE = "bench-a";
    private static final String MIRROR_NODE = "bench-b";
    private static final Duration LOAD_TIMEOUT = Duration.ofMinutes(10);

    /** Where the transactions go. */
    public enum Target {
        /** Plain PostgreSQL through a HikariCP pool. */
        DIRECT,
        /** A Lockstep partnership through {@link LockstepDataSource}. */
        LOCKSTEP,
        /**
         * Each transaction run on two plain nodes with two-phase commit and nothing else: the
         * ceiling of any design that applies every transaction on both nodes of this machine.
         */
        CEILING,
        /**
         * As {@link #CEILING}, plus the least work that capture by triggers inside the writing
         * transaction can do: capture triggers on the first node and one journal record on both.
         * The floor under any design of that kind on this machine.
         */
        FLOOR;

        String label() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /**
     * @param clients  client counts, one run per count and target
     * @param seconds  length of each run
     * @param scale    pgbench scale factor for the embedded servers (and for loading an empty {@code --url} database)
     * @param targets  where to run
     * @param url      JDBC URL to bench directly instead of embedded servers, or null
     * @param user     user for {@code url}
     * @param password password for {@code url}
     * @param capture  capture mode the Lockstep target attaches the tables with, and the floor's triggers use
     * @param seed     seeds the clients' random numbers
     * @param warmup   seconds of unreported transactions before each measured run (0 for none)
     */
    public record Options(List<Integer> clients, int seconds, int scale, List<Target> targets, String url, String user,
                          String password, CaptureMode capture, long seed, int warmup) {

        /** Reads and checks the options. */
        public static Options from(Args args) {
            List<Integer> clients = args.integers("clients", List.of(1, 8, 32), 1, 500);
            int seconds = args.integer("seconds", 10, 1, 3600);
            int scale = args.integer("scale", 10, 1, 20_000);
            String url = args.string("url", null);
            String target = args.choice("target", url == null ? "both" : "direct", Set.of("direct", "lockstep", "both", "ceiling", "floor"));
            if (url != null && !target.equals("direct")) {
                throw new Args.UsageException("bench: --url runs only the direct target; --target " + target + " needs the embedded servers");
            }
            if (url == null && (args.has("user") || args.has("password"))) {
                throw new Args.UsageException("bench: --user and --password apply only with --url");
            }
            List<Target> targets = switch (target) {
                case "direct" -> List.of(Target.DIRECT);
                case "lockstep" -> List.of(Target.LOCKSTEP);
                case "ceiling" -> List.of(Target.DIRECT, Target.CEILING);
                case "floor" -> List.of(Target.DIRECT, Target.FLOOR);
                default -> List.of(Target.DIRECT, Target.LOCKSTEP);
            };
            CaptureMode capture = CaptureMode.valueOf(args.choice("capture", "statement", Set.of("statement", "row")).toUpperCase(Locale.ROOT));
            return new Options(clients, seconds, scale, targets, url, args.string("user", null), args.string("password", null),
                    capture, args.integer("seed", 7, 0, Integer.MAX_VALUE), args.integer("warmup", 2, 0, 600));
        }
    }

    /**
     * One run's outcome.
     *
     * @param target  where it ran
     * @param clients client count
     * @param result  what the clients did
     */
    public record Run(Target target, int clients, ClientRunner.Result result) {
    }

    private final Options options;
    private final PrintStream out;

    /**
     * @param options what to run
     * @param out     where the lines go
     */
    public BenchCommand(Options options, PrintStream out) {
        this.options = options;
        this.out = out;
    }

    /** Runs the benchmark; 0 when every run committed without failures and the nodes verified identical, 1 otherwise. */
    public int run() throws IOException, SQLException, InterruptedException {
        out.println("bench: tpcb-like clients=" + options.clients().stream().map(String::valueOf).collect(Collectors.joining(","))
                + " seconds=" + options.seconds() + " warmup=" + options.warmup() + " targets=" + options.targets().stream().map(Target::label).collect(Collectors.joining(","))
                + (options.targets().contains(Target.LOCKSTEP) || options.targets().contains(Target.FLOOR) ? " capture=" + options.capture().name().toLowerCase(Locale.ROOT) : ""));
        return options.url() != null ? runAgainstUrl() : runEmbedded();
    }

    private int runAgainstUrl() throws SQLException, InterruptedException {
        int scale;
        try (HikariDataSource pool = directPool(options.url(), options.user(), options.password(), 1);
             Connection c = pool.getConnection()) {
            c.setAutoCommit(true);
            if (!TpcbWorkload.exists(c)) {
                out.println("bench: pgbench tables missing at " + withoutParameters(options.url()) + "; loading scale=" + options.scale() + " through it");
                TpcbWorkload.createAndLoad(c, options.scale());
            }
            scale = TpcbWorkload.detectScale(c);
        }
        out.println("bench: scale=" + scale + " (read from pgbench_branches)");
        boolean ok = true;
        for (int clients : options.clients()) {
            Run run = runDirect(options.url(), options.user(), options.password(), clients, scale);
            ok &= print(run);
        }
        return ok ? 0 : 1;
    }

    private int runEmbedded() throws IOException, SQLException, InterruptedException {
        boolean direct = options.targets().contains(Target.DIRECT);
        boolean lockstep = options.targets().contains(Target.LOCKSTEP);
        List<String> names = new ArrayList<>();
        if (direct) {
            names.add(DIRECT_NODE);
        }
        if (lockstep) {
            names.add(PRINCIPAL_NODE);
            names.add(MIRROR_NODE);
        }
        Target twoNode = options.targets().contains(Target.CEILING) ? Target.CEILING
                : options.targets().contains(Target.FLOOR) ? Target.FLOOR : null;
        if (twoNode != null) {
            names.add(TWO_NODE_FIRST);
            names.add(TWO_NODE_SECOND);
        }
        int maxClients = Collections.max(options.clients());
        // The mirror pool of a coordinator is twice its pool size; leave room for the inspectors.
        int maxConnections = Math.max(100, 3 * maxClients + 20);
        long t0 = System.nanoTime();
        try (EmbeddedNodes nodes = EmbeddedNodes.start(names, maxConnections, Map.of("shared_buffers", "256MB"))) {
            out.println(String.format(Locale.ROOT, "bench: started %d embedded nodes in %.1f s", nodes.size(), (System.nanoTime() - t0) / 1e9));
            t0 = System.nanoTime();
            List<Integer> all = new ArrayList<>();
            for (int i = 0; i < nodes.size(); i++) {
                all.add(i);
            }
            // Loaded directly on each node before Lockstep starts: identical rows everywhere, and
            // the schema's DDL capture is not installed yet, so nothing is mirrored while loading.
            nodes.onEachNode(all, LOAD_TIMEOUT, (i, c) -> TpcbWorkload.createAndLoad(c, options.scale()));
            out.println(String.format(Locale.ROOT, "bench: loaded scale=%d (%d accounts) on %d nodes in %.1f s", options.scale(),
                    (long) options.scale() * TpcbWorkload.ACCOUNTS_PER_SCALE, nodes.size(), (System.nanoTime() - t0) / 1e9));
            if (twoNode == Target.FLOOR) {
                installFloor(nodes, names.indexOf(TWO_NODE_FIRST), names.indexOf(TWO_NODE_SECOND));
            }
            int directIndex = names.indexOf(DIRECT_NODE);
            int principalIndex = names.indexOf(PRINCIPAL_NODE);
            boolean ok = true;
            boolean attached = false;
            for (int clients : options.clients()) {
                Run directRun = null;
                Run lockstepRun = null;
                if (direct) {
                    directRun = runDirect(nodes.jdbcUrl(directIndex), EmbeddedNodes.SUPERUSER, "", clients, options.scale());
                    ok &= print(directRun);
                }
                if (lockstep) {
                    LockstepOutcome outcome = runLockstep(nodes, principalIndex, clients, !attached);
                    attached = true;
                    lockstepRun = outcome.run();
                    ok &= print(lockstepRun);
                    ok &= printVerify(outcome);
                }
                if (twoNode != null) {
                    Run twoNodeRun = runTwoNodes(twoNode, nodes.jdbcUrl(names.indexOf(TWO_NODE_FIRST)),
                            nodes.jdbcUrl(names.indexOf(TWO_NODE_SECOND)), clients);
                    ok &= print(twoNodeRun);
                    printRatio(clients, twoNode.label(), directRun, twoNodeRun);
                }
                if (directRun != null && lockstepRun != null) {
                    printRatio(clients, "lockstep", directRun, lockstepRun);
                }
            }
            return ok ? 0 : 1;
        }
    }

    private Run runTwoNodes(Target target, String first, String second, int clients) throws InterruptedException, SQLException {
        try (HikariDataSource a = directPool(first, EmbeddedNodes.SUPERUSER, "", clients);
             HikariDataSource b = directPool(second, EmbeddedNodes.SUPERUSER, "", clients)) {
            boolean journal = target == Target.FLOOR;
            ClientRunner runner = new ClientRunner(clients, index -> TpcbWorkload.twoNodeClient(a.getConnection(), b.getConnection(),
                    options.scale(), journal), options.seed());
            Run run = new Run(target, clients, warmUpAndRun(runner));
            if (journal) {
                out.println("bench floor journal records so far (warm-ups and earlier runs included) first=" + journalRecords(a)
                        + " second=" + journalRecords(b));
            }
            return run;
        }
    }

    /** The floor's schema on both nodes, and its capture triggers on the tables of the first. */
    private void installFloor(EmbeddedNodes nodes, int first, int second) throws SQLException, IOException {
        String sql;
        try (InputStream in = BenchCommand.class.getResourceAsStream(FLOOR_SQL)) {
            if (in == null) {
                throw new IOException("bench: " + FLOOR_SQL + " is missing from the classpath");
            }
            sql = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
        String mode = options.capture().name().toLowerCase(Locale.ROOT);
        nodes.onEachNode(List.of(first, second), LOAD_TIMEOUT, (i, c) -> {
            try (Statement st = c.createStatement()) {
                st.execute(sql);
                if (i == first) {
                    for (String table : TpcbWorkload.TABLES) {
                        st.execute("SELECT bench_floor_attach('" + table + "', '" + mode + "')");
                    }
                }
            }
        });
        out.println("bench: floor capture triggers (capture=" + mode + ") on " + TpcbWorkload.TABLES.size() + " tables");
    }

    private static long journalRecords(HikariDataSource pool) throws SQLException {
        try (Connection c = pool.getConnection(); Statement st = c.createStatement();
             ResultSet rs = st.executeQuery("SELECT count(*) FROM bench_floor_journal")) {
            rs.next();
            return rs.getLong(1);
        }
    }

    private void printRatio(int clients, String label, Run direct, Run other) {
        double d = direct == null ? 0 : direct.result().perSecond();
        out.println(String.format(Locale.ROOT, "bench ratio clients=%d %s/direct=%.2f", clients, label,
                d == 0 ? 0 : other.result().perSecond() / d));
    }

    private Run runDirect(String url, String user, String password, int clients, int scale) throws InterruptedException {
        try (HikariDataSource pool = directPool(url, user, password, clients)) {
            ClientRunner runner = new ClientRunner(clients, index -> TpcbWorkload.client(pool.getConnection(), scale), options.seed());
            return new Run(Target.DIRECT, clients, warmUpAndRun(runner));
        }
    }

    private record LockstepOutcome(Run run, VerifyReport report) {
    }

    private LockstepOutcome runLockstep(EmbeddedNodes nodes, int principalIndex, int clients, boolean attach)
            throws SQLException, InterruptedException {
        LockstepConfig config = LockstepConfig.builder()
                .partnership("bench")
                .principal(nodes.nodeConfig(principalIndex))
                .mirror(nodes.nodeConfig(principalIndex + 1))
                .poolSize(clients)
                .build();
        try (LockstepDataSource ds = LockstepDataSource.start(config)) {
            if (attach) {
                long t0 = System.nanoTime();
                for (String table : TpcbWorkload.TABLES) {
                    ds.partnership().attach(table, options.capture());
                }
                out.println(String.format(Locale.ROOT, "bench: attached %d tables (capture=%s) in %.1f s", TpcbWorkload.TABLES.size(),
                        options.capture().name().toLowerCase(Locale.ROOT), (System.nanoTime() - t0) / 1e9));
            }
            ClientRunner runner = new ClientRunner(clients, index -> TpcbWorkload.client(ds.getConnection(), options.scale()), options.seed());
            Run run = new Run(Target.LOCKSTEP, clients, warmUpAndRun(runner));
            return new LockstepOutcome(run, ds.partnership().verify());
        }
    }

    /** Prints the comparison of both nodes after a Lockstep run; false when they differ. */
    private boolean printVerify(LockstepOutcome outcome) {
        VerifyReport report = outcome.report();
        out.println("verify identical=" + report.identical());
        report.tables().stream().filter(t -> !t.identical()).forEach(t -> out.println("verify differs table=" + t.table()
                + " principal_rows=" + t.principalRows() + " mirror_rows=" + t.mirrorRows()));
        report.sequences().stream().filter(s -> !s.mirrorNotBehind()).forEach(s -> out.println("verify behind sequence="
                + s.sequence() + " principal=" + s.principal() + " mirror=" + s.mirror()));
        return report.identical();
    }

    /** An unreported warm-up (JIT, pooled connections, server caches), then the measured run. */
    private ClientRunner.Result warmUpAndRun(ClientRunner runner) throws InterruptedException {
        if (options.warmup() > 0) {
            ClientRunner.Result warmUp = runner.run(Duration.ofSeconds(options.warmup()), Long.MAX_VALUE, null);
            if (warmUp.firstError() != null) {
                out.println("bench note warm-up first_error=" + warmUp.firstError());
            }
        }
        return runner.run(Duration.ofSeconds(options.seconds()), Long.MAX_VALUE, null);
    }

    private static HikariDataSource directPool(String url, String user, String password, int size) {
        HikariConfig h = new HikariConfig();
        h.setPoolName("bench-direct");
        h.setJdbcUrl(url);
        if (user != null) {
            h.setUsername(user);
        }
        if (password != null) {
            h.setPassword(password);
        }
        h.setAutoCommit(false);
        h.setMaximumPoolSize(size);
        h.setMinimumIdle(size);
        h.setConnectionTimeout(10_000);
        return new HikariDataSource(h);
    }

    /** The URL without its parameters, which may hold a password. */
    static String withoutParameters(String url) {
        int q = url.indexOf('?');
        return q < 0 ? url : url.substring(0, q) + "?...";
    }

    /** Prints a run's line; false when transactions failed. */
    private boolean print(Run run) {
        ClientRunner.Result r = run.result();
        out.println(String.format(Locale.ROOT, "bench target=%s clients=%d seconds=%d tx=%d tps=%.1f p50_ms=%.2f p99_ms=%.2f",
                run.target().label(), run.clients(), options.seconds(), r.committed(), r.perSecond(),
                r.latencies().percentileMillis(50), r.latencies().percentileMillis(99)));
        if (r.retries() > 0 || r.failed() > 0 || r.firstError() != null) {
            out.println("bench note target=" + run.target().label() + " clients=" + run.clients() + " retries=" + r.retries()
                    + " failed=" + r.failed() + (r.firstError() != null ? " first_error=" + r.firstError() : ""));
        }
        return r.failed() == 0 && !r.unfinished();
    }
}
