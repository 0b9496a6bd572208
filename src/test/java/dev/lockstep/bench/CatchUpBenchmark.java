package dev.lockstep.bench;

import dev.lockstep.CatchUpResult;
import dev.lockstep.LockstepConfig;
import dev.lockstep.LockstepDataSource;
import dev.lockstep.NodeConfig;
import dev.lockstep.core.MirroringState;
import dev.lockstep.testing.PgNode;

import java.sql.Connection;
import java.sql.Statement;
import java.time.Duration;
import java.util.Locale;

/**
 * Catch-up, measured: the mirror is killed, the principal commits a backlog alone (exposed) with
 * N clients, the mirror is restarted and catches up by itself, once with the clients stopped and
 * once with them still writing. Prints the principal's exposed write rate, the catch-up rate
 * (records = transactions = rows here) and the cut-over pause. Asserts nothing.
 *
 * <p>Run: {@code mvn -q test-compile exec:java -Dexec.classpathScope=test
 * -Dexec.mainClass=dev.lockstep.bench.CatchUpBenchmark [-Dexec.args="--backlog 20000 --clients 8"]}
 */
public final class CatchUpBenchmark {

    private static final Duration LIMIT = Duration.ofSeconds(300);

    private CatchUpBenchmark() {
    }

    public static void main(String[] args) throws Exception {
        int backlog = 20_000;
        int clients = 8;
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--backlog" -> backlog = Integer.parseInt(args[i + 1]);
                case "--clients" -> clients = Integer.parseInt(args[i + 1]);
                default -> throw new IllegalArgumentException("unknown option " + args[i] + "; options: --backlog 20000 --clients 8");
            }
        }
        try (PgNode a = PgNode.start("node-a"); PgNode b = PgNode.start("node-b"); PgNode w = PgNode.start("witness")) {
            NodeConfig witness = NodeConfig.of("witness", w.directJdbcUrl(w.createDatabase("witness")), w.user(), w.password());
            java.util.List<String> seeding = new java.util.ArrayList<>();
            System.out.println("| load during catch-up | exposed write rate | backlog | replayed | catch-up rate | write rate during catch-up | passes | cut-over pause | identical |");
            System.out.println("|---|---|---|---|---|---|---|---|---|");
            for (boolean underLoad : new boolean[] {false, true}) {
                System.out.println(run(a, b, witness, backlog, clients, underLoad, seeding));
            }
            System.out.println();
            System.out.println("| load during seeding | rows on the principal | seed + catch-up until SYNCHRONIZED | seeding rate | identical |");
            System.out.println("|---|---|---|---|---|");
            seeding.forEach(System.out::println);
        }
        System.out.flush();
        System.exit(0);
    }

    private static String run(PgNode a, PgNode b, NodeConfig witness, int backlog, int clients, boolean underLoad,
                              java.util.List<String> seeding) throws Exception {
        String name = underLoad ? "catchup_loaded" : "catchup_idle";
        String dbA = a.createDatabase(name);
        String dbB = b.createDatabase(name);
        LockstepConfig config = LockstepConfig.builder().partnership(name)
                .principal(NodeConfig.of("node-a", a.directJdbcUrl(dbA), a.user(), a.password()))
                .mirror(NodeConfig.of("node-b", b.directJdbcUrl(dbB), b.user(), b.password()))
                .witness(witness).partnerTimeout(Duration.ofSeconds(2)).heartbeatInterval(Duration.ofMillis(250))
                .remoteCallTimeout(Duration.ofSeconds(1)).connectTimeout(Duration.ofSeconds(2))
                .inDoubtGrace(Duration.ofSeconds(5)).resolverInterval(Duration.ofMillis(500)).poolSize(clients + 2).build();
        try (LockstepDataSource ds = LockstepDataSource.start(config)) {
            try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
                st.execute("CREATE TABLE t (id bigint PRIMARY KEY, node text NOT NULL)");
            }
            AcknowledgingWriters writers = new AcknowledgingWriters(ds, clients);
            try {
                until(() -> writers.acknowledged.size() >= 500);
                b.kill();
                try {
                    until(() -> ds.partnership().status().state() == MirroringState.DISCONNECTED);
                    int from = writers.acknowledged.size();
                    long started = System.nanoTime();
                    until(() -> writers.acknowledged.size() >= from + backlog);
                    double rate = (writers.acknowledged.size() - from) / ((System.nanoTime() - started) / 1e9);
                    if (!underLoad) {
                        writers.stop();
                    }
                    b.restart();
                    int atRestart = writers.acknowledged.size();
                    long restarted = System.nanoTime();
                    until(() -> ds.partnership().status().state() == MirroringState.SYNCHRONIZED
                            && ds.partnership().lastCatchUp().isPresent());
                    double rateDuring = (writers.acknowledged.size() - atRestart) / ((System.nanoTime() - restarted) / 1e9);
                    writers.stop();
                    CatchUpResult r = ds.partnership().lastCatchUp().orElseThrow();
                    boolean identical = ds.partnership().verify().identical();
                    seeding.add(seed(ds, clients, underLoad));
                    return String.format(Locale.ROOT, "| %s | %.0f tx/s | %d | %d | %.0f records/s | %s | %d | %.1f ms | %s |",
                            underLoad ? clients + " clients" : "none", rate, backlog, r.replayed(),
                            r.replayed() / (r.replayMillis() / 1000), underLoad ? String.format(Locale.ROOT, "%.0f tx/s", rateDuring) : "-", r.passes(), r.cutOverMillis(),
                            identical);
                } finally {
                    if (!b.isRunning()) {
                        b.restart();
                    }
                }
            } finally {
                writers.stop();
            }
        }
    }

    /**
     * Re-seeds the mirror of a partnership that holds the catch-up's rows, with the clients
     * writing or not, and times it until SYNCHRONIZED: snapshot copy, then catch-up from it.
     */
    private static String seed(LockstepDataSource ds, int clients, boolean underLoad) throws Exception {
        long rows;
        try (Connection c = ds.getConnection(); Statement st = c.createStatement(); var rs = st.executeQuery("SELECT count(*) FROM t")) {
            rs.next();
            rows = rs.getLong(1);
        }
        AcknowledgingWriters writers = underLoad ? new AcknowledgingWriters(ds, clients) : null;
        try {
            long started = System.nanoTime();
            ds.partnership().reseedMirror();
            until(() -> ds.partnership().status().state() == MirroringState.SYNCHRONIZED
                    && ds.partnership().lastCatchUp().map(CatchUpResult::seeded).orElse(false));
            double seconds = (System.nanoTime() - started) / 1e9;
            if (writers != null) {
                writers.stop();
            }
            boolean identical = ds.partnership().verify().identical();
            return String.format(Locale.ROOT, "| %s | %d | %.1f s | %.0f rows/s | %s |", underLoad ? clients + " clients" : "none",
                    rows, seconds, rows / seconds, identical);
        } finally {
            if (writers != null) {
                writers.stop();
            }
        }
    }

    /** Polls every 50 ms until the condition holds, failing after the limit. */
    private static void until(Check check) throws Exception {
        long deadline = System.nanoTime() + LIMIT.toNanos();
        while (!check.holds()) {
            if (System.nanoTime() - deadline > 0) {
                throw new IllegalStateException("condition not met within " + LIMIT);
            }
            Thread.sleep(50);
        }
    }

    @FunctionalInterface
    private interface Check {
        boolean holds() throws Exception;
    }
}
