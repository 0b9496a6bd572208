package dev.lockstep.cli;

import dev.lockstep.LockstepConfig;
import dev.lockstep.LockstepDataSource;
import dev.lockstep.VerifyReport;

import java.io.IOException;
import java.io.PrintStream;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * {@code demo}: two embedded nodes in a partnership, a bank of 100 accounts, concurrent transfers
 * through the {@link LockstepDataSource}, then a comparison of both nodes read directly.
 * Every line it prints starts with {@code demo:}.
 */
public final class DemoCommand {

    /** The options {@code demo} accepts. */
    public static final Set<String> OPTIONS = Set.of("transactions", "clients", "seed");

    static final String PRINCIPAL = "node-a";
    static final String MIRROR = "node-b";
    static final String PARTNERSHIP = "demo";
    static final int ACCOUNTS = 100;
    static final long OPENING_BALANCE = 1_000;
    static final List<String> TABLES = List.of("public.accounts", "public.transfers");
    /** The transfers stop here even if not all have run, so that the demo stays short. */
    private static final Duration TIME_LIMIT = Duration.ofSeconds(40);
    private static final Duration SETTLE_TIMEOUT = Duration.ofSeconds(10);

    /**
     * @param transactions how many transfers to commit
     * @param clients      client threads
     * @param seed         seeds the random transfers
     */
    public record Options(int transactions, int clients, long seed) {
        /** Reads {@code --transactions} (default 2000), {@code --clients} (8) and {@code --seed}. */
        public static Options from(Args args) {
            return new Options(args.integer("transactions", 2_000, 1, 10_000_000), args.integer("clients", 8, 1, 200),
                    args.integer("seed", 42, 0, Integer.MAX_VALUE));
        }
    }

    /**
     * What the demo found.
     *
     * @param requested       transfers asked for
     * @param committed       transfers committed
     * @param failed          transfers that failed for good
     * @param retries         retries after 40001/40P01
     * @param checksums       per table and node, read directly from each node
     * @param verifyIdentical {@code partnership().verify().identical()}
     * @param totalBalances   sum of all balances on the principal and on the mirror
     * @param mirrorSettled   whether the mirror's background commits had all landed before the comparison
     */
    public record Summary(int requested, long committed, long failed, long retries, List<NodeInspector.TableChecksum> checksums,
                          boolean verifyIdentical, Map<String, Long> totalBalances, boolean mirrorSettled) {

        /** Whether every table has the same checksum on both nodes. */
        public boolean checksumsMatch() {
            for (String table : TABLES) {
                List<NodeInspector.TableChecksum> forTable = checksums.stream().filter(c -> c.table().equals(table)).toList();
                if (forTable.size() != 2 || !forTable.get(0).sameRowsAs(forTable.get(1))) {
                    return false;
                }
            }
            return true;
        }

        /** Whether the nodes are identical by every measure: checksums, verify and total balance. */
        public boolean identical() {
            return checksumsMatch() && verifyIdentical && totalBalances.size() == 2
                    && totalBalances.values().stream().distinct().count() == 1;
        }

        /** 0 when the nodes are identical, 1 otherwise. */
        public int exitCode() {
            return identical() ? 0 : 1;
        }
    }

    private final Options options;
    private final PrintStream out;

    /**
     * @param options what to run
     * @param out     where the lines go
     */
    public DemoCommand(Options options, PrintStream out) {
        this.options = options;
        this.out = out;
    }

    /** Runs the demo; servers are stopped before it returns, also on failure. */
    public Summary run() throws IOException, SQLException, InterruptedException {
        out.println("demo: starting embedded nodes " + PRINCIPAL + " (principal) and " + MIRROR + " (mirror)");
        try (EmbeddedNodes nodes = EmbeddedNodes.start(List.of(PRINCIPAL, MIRROR), 100, Map.of())) {
            LockstepConfig config = LockstepConfig.builder()
                    .partnership(PARTNERSHIP)
                    .principal(nodes.nodeConfig(0))
                    .mirror(nodes.nodeConfig(1))
                    .poolSize(options.clients())
                    .build();
            try (LockstepDataSource ds = LockstepDataSource.start(config)) {
                out.println("demo: partnership " + PARTNERSHIP + " started at epoch " + ds.partnership().epoch());
                createSchema(ds);
                ClientRunner.Result result = runTransfers(ds);
                return compare(nodes, ds, result);
            }
        }
    }

    private void createSchema(LockstepDataSource ds) throws SQLException {
        try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL, updated_at timestamptz DEFAULT now())");
            st.execute("INSERT INTO accounts (id, balance) SELECT g, " + OPENING_BALANCE + " FROM generate_series(1, " + ACCOUNTS + ") g");
            st.execute("CREATE TABLE transfers (id bigserial PRIMARY KEY, src int, dst int, amount int,"
                    + " at timestamptz DEFAULT clock_timestamp(), token uuid DEFAULT gen_random_uuid())");
        }
        List<String> attached = ds.partnership().attachedTables();
        for (String table : TABLES) {
            if (!attached.contains(table)) {
                // Tables with a primary key created through Lockstep are attached by its DDL
                // capture; this only runs if that did not happen.
                out.println("demo: table " + table + " was not attached by DDL capture; attaching it");
                ds.partnership().attach(table);
            }
        }
        out.println("demo: created accounts (" + ACCOUNTS + " rows) and transfers; attached " + ds.partnership().attachedTables());
    }

    private ClientRunner.Result runTransfers(LockstepDataSource ds) throws InterruptedException {
        out.println("demo: running " + options.transactions() + " transfers on " + options.clients() + " clients");
        ClientRunner runner = new ClientRunner(options.clients(), index -> new TransferClient(ds.getConnection()), options.seed());
        long[] last = {0, System.nanoTime()};
        ClientRunner.Result result = runner.run(TIME_LIMIT, options.transactions(), committed -> {
            long now = System.nanoTime();
            double rate = (committed - last[0]) / ((now - last[1]) / 1e9);
            last[0] = committed;
            last[1] = now;
            out.println(String.format(Locale.ROOT, "demo: progress committed=%d tx/s=%.1f", committed, rate));
        });
        out.println(String.format(Locale.ROOT, "demo: workload committed=%d failed=%d retries=%d seconds=%.2f tx/s=%.1f",
                result.committed(), result.failed(), result.retries(), result.elapsed().toNanos() / 1e9, result.perSecond()));
        if (result.firstError() != null) {
            out.println("demo: first error: " + result.firstError());
        }
        return result;
    }

    private Summary compare(EmbeddedNodes nodes, LockstepDataSource ds, ClientRunner.Result result)
            throws SQLException, InterruptedException {
        boolean settled;
        try (Connection mirror = nodes.connect(1)) {
            settled = NodeInspector.awaitNoPreparedTransactions(mirror, SETTLE_TIMEOUT);
        }
        if (!settled) {
            out.println("demo: warning: mirror " + MIRROR + " still holds prepared transactions after " + SETTLE_TIMEOUT);
        }
        List<NodeInspector.TableChecksum> checksums = new ArrayList<>();
        Map<String, Long> balances = new LinkedHashMap<>();
        for (int i = 0; i < 2; i++) {
            try (Connection c = nodes.connect(i)) {
                for (String table : TABLES) {
                    NodeInspector.TableChecksum sum = NodeInspector.checksum(c, nodes.name(i), table);
                    checksums.add(sum);
                    out.println("demo: checksum table=" + table + " node=" + sum.node() + " rows=" + sum.rows() + " digest=" + sum.digest());
                }
                long balance = NodeInspector.queryLong(c, "SELECT sum(balance) FROM accounts");
                balances.put(nodes.name(i), balance);
                out.println("demo: total_balance node=" + nodes.name(i) + " balance=" + balance
                        + " expected=" + ACCOUNTS * OPENING_BALANCE);
            }
        }
        VerifyReport report = ds.partnership().verify();
        out.println("demo: verify identical=" + report.identical());
        Summary summary = new Summary(options.transactions(), result.committed(), result.failed(), result.retries(),
                List.copyOf(checksums), report.identical(), Collections.unmodifiableMap(balances), settled);
        out.println("demo: " + summary.committed() + " transactions committed, nodes identical: " + summary.identical());
        return summary;
    }

    /** One client of the demo: moves a random amount between two random accounts. */
    private static final class TransferClient extends ConnectionClient {
        private final PreparedStatement debit;
        private final PreparedStatement credit;
        private final PreparedStatement record;

        TransferClient(Connection connection) throws SQLException {
            super(connection);
            debit = prepare("UPDATE accounts SET balance = balance - ?, updated_at = now() WHERE id = ?");
            credit = prepare("UPDATE accounts SET balance = balance + ?, updated_at = now() WHERE id = ?");
            record = prepare("INSERT INTO transfers (src, dst, amount) VALUES (?, ?, ?)");
        }

        @Override
        public void transaction(SplittableRandom random) throws SQLException {
            int src = 1 + random.nextInt(ACCOUNTS);
            int dst = 1 + random.nextInt(ACCOUNTS - 1);
            if (dst >= src) {
                dst++;
            }
            int amount = 1 + random.nextInt(100);
            debit.setLong(1, amount);
            debit.setInt(2, src);
            debit.executeUpdate();
            credit.setLong(1, amount);
            credit.setInt(2, dst);
            credit.executeUpdate();
            record.setInt(1, src);
            record.setInt(2, dst);
            record.setInt(3, amount);
            record.executeUpdate();
        }

    }
}
