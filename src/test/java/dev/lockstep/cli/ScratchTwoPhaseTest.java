package dev.lockstep.cli;

import dev.lockstep.*;
import org.junit.jupiter.api.Test;
import java.sql.*;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.atomic.AtomicLong;

class ScratchTwoPhaseTest {
    static void bench(String label, int clients, ClientRunner.ClientFactory f) throws Exception {
        new ClientRunner(clients, f, 1).run(Duration.ofSeconds(2), 300, null); // warm-up
        ClientRunner.Result r = new ClientRunner(clients, f, 1).run(Duration.ofSeconds(5), 3000, null);
        System.out.printf("TWOPC %s clients=%d tx=%d tps=%.1f p50=%.2f p99=%.2f err=%s%n", label, clients, r.committed(), r.perSecond(),
            r.latencies().percentileMillis(50), r.latencies().percentileMillis(99), r.firstError());
    }
    static ClientRunner.Client client(Connection c, String table, boolean twoPhase, AtomicLong ids) throws SQLException {
        c.setAutoCommit(false);
        PreparedStatement ps = c.prepareStatement("INSERT INTO " + table + " VALUES (?, 1, 'x')");
        AtomicLong gids = new AtomicLong();
        return new ClientRunner.Client() {
            public Connection connection() { return twoPhase ? wrap() : c; }
            Connection wrap() {
                return (Connection) java.lang.reflect.Proxy.newProxyInstance(getClass().getClassLoader(), new Class<?>[]{Connection.class}, (p, m, a) -> {
                    if (m.getName().equals("commit")) {
                        String gid = "g" + Thread.currentThread().getId() + "-" + gids.incrementAndGet();
                        try (Statement st = c.createStatement()) { st.execute("PREPARE TRANSACTION '" + gid + "'"); }
                        c.setAutoCommit(true);
                        try (Statement st = c.createStatement()) { st.execute("COMMIT PREPARED '" + gid + "'"); }
                        c.setAutoCommit(false);
                        return null;
                    }
                    return m.invoke(c, a);
                });
            }
            public void transaction(SplittableRandom r) throws SQLException { ps.setLong(1, ids.incrementAndGet()); ps.executeUpdate(); }
            public void close() throws SQLException { c.close(); }
        };
    }
    @Test void twoPhase() throws Exception {
        try (EmbeddedNodes nodes = EmbeddedNodes.start(List.of("ta", "tb"), 100, Map.of())) {
            nodes.onEachNode(List.of(0, 1), Duration.ofMinutes(1), (i, c) -> { c.createStatement().execute("CREATE TABLE t1 (id bigint primary key, v int, pad text)"); c.createStatement().execute("CREATE TABLE t2 (id bigint primary key, v int, pad text)"); c.createStatement().execute("CREATE TABLE t3 (id bigint primary key, v int, pad text)"); });
            for (int clients : new int[]{1, 4}) {
                bench("direct-plain", clients, i -> client(nodes.connect(0), "t1", false, new AtomicLong(1_000_000_000L * (i + 1) + clients * 100_000_000L)));
                bench("direct-2pc", clients, i -> client(nodes.connect(0), "t2", true, new AtomicLong(1_000_000_000L * (i + 1) + clients * 100_000_000L)));
            }
            LockstepConfig config = LockstepConfig.builder().partnership("p").principal(nodes.nodeConfig(0)).mirror(nodes.nodeConfig(1)).poolSize(4).build();
            try (LockstepDataSource ds = LockstepDataSource.start(config)) {
                try (Connection c = ds.getConnection()) { c.createStatement().execute("CREATE TABLE t4 (id bigint primary key, v int, pad text)"); }
                for (int clients : new int[]{1, 4}) {
                    bench("lockstep-unmirrored", clients, i -> client(ds.getConnection(), "t3", false, new AtomicLong(1_000_000_000L * (i + 1) + clients * 100_000_000L)));
                    bench("lockstep-mirrored", clients, i -> client(ds.getConnection(), "t4", false, new AtomicLong(1_000_000_000L * (i + 1) + clients * 100_000_000L)));
                }
            }
        }
    }
}
