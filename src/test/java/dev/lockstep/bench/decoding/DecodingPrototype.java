package dev.lockstep.bench.decoding;

import dev.lockstep.cli.ClientRunner;
import dev.lockstep.cli.EmbeddedNodes;
import dev.lockstep.cli.TpcbWorkload;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * How far capture by logical decoding of prepared transactions, instead of capture triggers,
 * would take the TPC-B ratio on this machine: a prototype of the synchronous path only (statements
 * and PREPARE on the principal, its rows from a two-phase test_decoding slot applied on the mirror,
 * a journal row on both), run against a plain server as {@code bench} does. Prints figures and a
 * comparison of the two nodes' tables; exits 1 if they differ. Asserts nothing else.
 *
 * <p>Run: {@code mvn -q test-compile exec:java -Dexec.classpathScope=test
 * -Dexec.mainClass=dev.lockstep.bench.decoding.DecodingPrototype [-Dexec.args="--clients 8 --seconds 15 --warmup 10"]}
 */
public final class DecodingPrototype {

    private static final int SCALE = 10;
    private static final long SEED = 7;
    private static final Duration LOAD_TIMEOUT = Duration.ofMinutes(10);
    private static final Map<String, String> LOGICAL = Map.of("shared_buffers", "256MB", "wal_level", "logical",
            "max_replication_slots", "4", "max_wal_senders", "4");

    private DecodingPrototype() {
    }

    public static void main(String[] args) throws Exception {
        Map<String, Integer> options = new HashMap<>(Map.of("--clients", 8, "--seconds", 15, "--warmup", 10));
        for (int i = 0; i + 1 < args.length; i += 2) {
            if (!options.containsKey(args[i])) {
                throw new IllegalArgumentException("decoding prototype: unknown option " + args[i] + "; known: " + options.keySet());
            }
            options.put(args[i], Integer.parseInt(args[i + 1]));
        }
        int clients = options.get("--clients");
        Duration seconds = Duration.ofSeconds(options.get("--seconds"));
        Duration warmup = Duration.ofSeconds(options.get("--warmup"));
        boolean identical;
        try (EmbeddedNodes direct = EmbeddedNodes.start(List.of("proto-direct"), 100, Map.of("shared_buffers", "256MB"));
             EmbeddedNodes pair = EmbeddedNodes.start(List.of("proto-principal", "proto-mirror"), 100, LOGICAL)) {
            direct.onEachNode(List.of(0), LOAD_TIMEOUT, (i, c) -> TpcbWorkload.createAndLoad(c, SCALE));
            pair.onEachNode(List.of(0, 1), LOAD_TIMEOUT, (i, c) -> {
                TpcbWorkload.createAndLoad(c, SCALE);
                try (Statement st = c.createStatement()) {
                    st.execute("CREATE TABLE prototype_journal (gid text PRIMARY KEY, changes text)");
                    if (i == 0) {
                        st.execute("SELECT pg_create_logical_replication_slot('" + DecodingStream.SLOT + "', 'test_decoding', false, true)");
                    }
                }
            });
            ClientRunner.Result plain = measure(new ClientRunner(clients, i -> TpcbWorkload.client(direct.connect(0), SCALE), SEED),
                    warmup, seconds);
            print("direct", clients, seconds, plain);
            Map<String, String> keys = primaryKeys(pair.connect(1));
            ClientRunner.Result prototype;
            try (DecodingStream decoded = new DecodingStream(pair.jdbcUrl(0))) {
                String mirrorUrl = pair.jdbcUrl(1) + "&stringtype=unspecified";
                prototype = measure(new ClientRunner(clients, i -> new PrototypeClient(TpcbWorkload.client(pair.connect(0), SCALE),
                        DriverManager.getConnection(mirrorUrl), decoded, keys), SEED), warmup, seconds);
            }
            print("decoding", clients, seconds, prototype);
            System.out.println(String.format(Locale.ROOT, "decoding-prototype ratio clients=%d decoding/direct=%.2f", clients,
                    prototype.perSecond() / plain.perSecond()));
            identical = compare(pair, keys);
        }
        System.exit(identical ? 0 : 1);
    }

    private static ClientRunner.Result measure(ClientRunner runner, Duration warmup, Duration seconds) throws InterruptedException {
        if (!warmup.isZero()) {
            runner.run(warmup, Long.MAX_VALUE, null);
        }
        return runner.run(seconds, Long.MAX_VALUE, null);
    }

    private static void print(String target, int clients, Duration seconds, ClientRunner.Result r) {
        System.out.println(String.format(Locale.ROOT, "decoding-prototype target=%s clients=%d seconds=%d tx=%d tps=%.1f p50_ms=%.2f"
                        + " p99_ms=%.2f failed=%d%s", target, clients, seconds.toSeconds(), r.committed(), r.perSecond(),
                r.latencies().percentileMillis(50), r.latencies().percentileMillis(99), r.failed(),
                r.firstError() == null ? "" : " first_error=" + r.firstError()));
    }

    /** Each TPC-B table's single-column primary key, by the qualified name decoding prints. */
    private static Map<String, String> primaryKeys(Connection c) throws SQLException {
        Map<String, String> keys = new HashMap<>();
        try (c; PreparedStatement ps = c.prepareStatement("SELECT a.attname FROM pg_index i JOIN pg_attribute a"
                + " ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] WHERE i.indrelid = ?::regclass AND i.indisprimary")) {
            for (String table : TpcbWorkload.TABLES) {
                ps.setString(1, table);
                try (ResultSet rs = ps.executeQuery()) {
                    if (!rs.next()) {
                        throw new SQLException("decoding prototype: " + table + " has no primary key");
                    }
                    keys.put(table, rs.getString(1));
                }
            }
        }
        return keys;
    }

    private static boolean compare(EmbeddedNodes pair, Map<String, String> keys) throws SQLException {
        boolean identical = true;
        for (String table : keys.keySet()) {
            String query = "SELECT count(*) || '/' || coalesce(sum(hashtext(x::text)), 0) FROM " + table + " x";
            String onPrincipal = single(pair, 0, query);
            String onMirror = single(pair, 1, query);
            identical &= onPrincipal.equals(onMirror);
            System.out.println("decoding-prototype verify table=" + table + " principal=" + onPrincipal + " mirror=" + onMirror);
        }
        System.out.println("decoding-prototype verify identical=" + identical);
        return identical;
    }

    private static String single(EmbeddedNodes nodes, int node, String query) throws SQLException {
        try (Connection c = nodes.connect(node); Statement st = c.createStatement(); ResultSet rs = st.executeQuery(query)) {
            rs.next();
            return rs.getString(1);
        }
    }
}
