package dev.lockstep.cli;

import dev.lockstep.CaptureMode;
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
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicLong;

/**
 * {@code bench-capture}: what capture costs. On one partnership, the table
 * {@code capture_bench (id bigint PRIMARY KEY, v int, pad text)} is attached with statement-level
 * capture, then re-attached with row-level capture; for each mode three workloads run: many
 * single-row INSERT transactions on several clients, a few transactions inserting many rows in
 * one statement, and a few updating as many rows in one statement. As a baseline the same
 * workloads run first on {@code capture_baseline}, an identical table that is not mirrored
 * (written through the same data source; its commits prepare and commit on the principal only).
 * Each mode gets an unreported warm-up round (200 single-row transactions, one bulk transaction
 * each) before the measured one. Result lines start with {@code capture mode=}.
 */
public final class CaptureBenchCommand {

    /** The options {@code bench-capture} accepts. */
    public static final Set<String> OPTIONS = Set.of("single-row-tx", "bulk-tx", "bulk-rows", "clients", "limit-seconds");

    static final String MIRRORED_TABLE = "public.capture_bench";
    static final String BASELINE_TABLE = "public.capture_baseline";
    private static final String TABLE_SHAPE = " (id bigint PRIMARY KEY, v int, pad text)";
    /** Ids of bulk-inserted rows start here, above those of single-row inserts. */
    private static final long BULK_ID_BASE = 1_000_000_000L;
    private static final String PAD = "x".repeat(100);
    private static final int WARM_UP_SINGLE_ROW_TX = 200;

    /**
     * @param singleRowTransactions single-row INSERT transactions per mode
     * @param bulkTransactions      multi-row INSERT (and UPDATE) transactions per mode
     * @param bulkRows              rows per multi-row transaction
     * @param clients               clients of the single-row workload
     * @param limit                 time limit of each workload
     */
    public record Options(int singleRowTransactions, int bulkTransactions, int bulkRows, int clients, Duration limit) {
        /** Reads the options; defaults 2000 single-row transactions, 20 bulk transactions of 5000 rows, 4 clients, 60 s. */
        public static Options from(Args args) {
            return new Options(args.integer("single-row-tx", 2_000, 1, 10_000_000), args.integer("bulk-tx", 20, 1, 100_000),
                    args.integer("bulk-rows", 5_000, 1, 10_000_000), args.integer("clients", 4, 1, 200),
                    Duration.ofSeconds(args.integer("limit-seconds", 60, 1, 3600)));
        }
    }

    /** The modes measured: the unmirrored baseline, then the two capture modes. */
    private enum Mode {
        UNMIRRORED(null, BASELINE_TABLE),
        STATEMENT(CaptureMode.STATEMENT, MIRRORED_TABLE),
        ROW(CaptureMode.ROW, MIRRORED_TABLE);

        final CaptureMode capture;
        final String table;

        Mode(CaptureMode capture, String table) {
            this.capture = capture;
            this.table = table;
        }

        String label() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    private final Options options;
    private final PrintStream out;

    /**
     * @param options what to run
     * @param out     where the lines go
     */
    public CaptureBenchCommand(Options options, PrintStream out) {
        this.options = options;
        this.out = out;
    }

    /** Runs the benchmark; 0 when nothing failed and the nodes verified identical, 1 otherwise. */
    public int run() throws IOException, SQLException, InterruptedException {
        try (EmbeddedNodes nodes = EmbeddedNodes.start(List.of("capture-a", "capture-b"), 100, Map.of("shared_buffers", "256MB"))) {
            try (Connection principal = nodes.connect(0); Statement st = principal.createStatement()) {
                // Created before Lockstep installs its DDL capture, so it stays unmirrored.
                st.execute("CREATE TABLE " + BASELINE_TABLE + TABLE_SHAPE);
            }
            LockstepConfig config = LockstepConfig.builder()
                    .partnership("capture")
                    .principal(nodes.nodeConfig(0))
                    .mirror(nodes.nodeConfig(1))
                    .poolSize(options.clients())
                    .build();
            boolean ok = true;
            try (LockstepDataSource ds = LockstepDataSource.start(config)) {
                execute(ds, "CREATE TABLE " + MIRRORED_TABLE + TABLE_SHAPE);
                for (Mode mode : Mode.values()) {
                    if (mode.capture != null) {
                        ds.partnership().attach(MIRRORED_TABLE, mode.capture);
                    }
                    // A short unreported round first, so that JIT, connection pools and the nodes'
                    // PL/pgSQL caches are warm; then the table starts empty for the measured round.
                    execute(ds, "TRUNCATE " + mode.table);
                    runWorkloads(ds, mode, Math.min(WARM_UP_SINGLE_ROW_TX, options.singleRowTransactions()), 1, false);
                    execute(ds, "TRUNCATE " + mode.table);
                    ok &= runWorkloads(ds, mode, options.singleRowTransactions(), options.bulkTransactions(), true);
                }
                VerifyReport report = ds.partnership().verify();
                out.println("capture verify identical=" + report.identical());
                ok &= report.identical();
            }
            return ok ? 0 : 1;
        }
    }

    private boolean runWorkloads(LockstepDataSource ds, Mode mode, int singleRowTransactions, int bulkTransactions, boolean report)
            throws InterruptedException {
        AtomicLong singleRowIds = new AtomicLong();
        ClientRunner.Result single = new ClientRunner(options.clients(),
                index -> new SingleRowInsert(ds.getConnection(), mode.table, singleRowIds), 1)
                .run(options.limit(), singleRowTransactions, null);
        boolean ok = print(report, mode, "single-row", single, 1, singleRowTransactions);
        AtomicLong insertBatches = new AtomicLong();
        ClientRunner.Result bulkInsert = new ClientRunner(1,
                index -> new BulkStatement(ds.getConnection(), "INSERT INTO " + mode.table
                        + " (id, v, pad) SELECT g, (g % 1000)::int, ? FROM generate_series(?::bigint, ?::bigint) g",
                        insertBatches, options.bulkRows()), 1)
                .run(options.limit(), bulkTransactions, null);
        ok &= print(report, mode, "bulk-insert", bulkInsert, options.bulkRows(), bulkTransactions);
        AtomicLong updateBatches = new AtomicLong();
        ClientRunner.Result bulkUpdate = new ClientRunner(1,
                index -> new BulkStatement(ds.getConnection(), "UPDATE " + mode.table
                        + " SET v = v + 1, pad = ? WHERE id BETWEEN ? AND ?", updateBatches, options.bulkRows()), 1)
                // Updates the batches the bulk insert committed, each once.
                .run(options.limit(), bulkInsert.committed(), null);
        ok &= print(report, mode, "bulk-update", bulkUpdate, options.bulkRows(), bulkInsert.committed());
        return ok;
    }

    private boolean print(boolean report, Mode mode, String workload, ClientRunner.Result r, int rowsPerTransaction, long requested) {
        if (!report) {
            if (r.firstError() != null) {
                out.println("capture note mode=" + mode.label() + " workload=" + workload + " warm-up first_error=" + r.firstError());
            }
            return r.failed() == 0;
        }
        double seconds = r.elapsed().toNanos() / 1e9;
        long rows = r.committed() * rowsPerTransaction;
        out.println(String.format(Locale.ROOT,
                "capture mode=%s workload=%s tx=%d rows=%d seconds=%.2f tx/s=%.1f rows/s=%.0f p50_ms=%.2f p99_ms=%.2f",
                mode.label(), workload, r.committed(), rows, seconds, r.perSecond(), seconds > 0 ? rows / seconds : 0,
                r.latencies().percentileMillis(50), r.latencies().percentileMillis(99)));
        if (r.committed() + r.failed() < requested) {
            out.println("capture note mode=" + mode.label() + " workload=" + workload + " time_limit_reached=true ran="
                    + (r.committed() + r.failed()) + " requested=" + requested + " limit=" + options.limit());
        }
        if (r.failed() > 0 || r.firstError() != null) {
            out.println("capture note mode=" + mode.label() + " workload=" + workload + " retries=" + r.retries() + " failed=" + r.failed()
                    + (r.firstError() != null ? " first_error=" + r.firstError() : ""));
        }
        return r.failed() == 0 && !r.unfinished();
    }

    private static void execute(LockstepDataSource ds, String sql) throws SQLException {
        try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute(sql);
        }
    }

    /** Inserts one row per transaction, with ids shared among the clients. */
    private static final class SingleRowInsert extends ConnectionClient {
        private final PreparedStatement insert;
        private final AtomicLong ids;

        SingleRowInsert(Connection connection, String table, AtomicLong ids) throws SQLException {
            super(connection);
            this.ids = ids;
            insert = prepare("INSERT INTO " + table + " (id, v, pad) VALUES (?, ?, ?)");
        }

        @Override
        public void transaction(SplittableRandom random) throws SQLException {
            insert.setLong(1, ids.incrementAndGet());
            insert.setInt(2, random.nextInt(1000));
            insert.setString(3, PAD);
            insert.executeUpdate();
        }

    }

    /**
     * One statement per transaction over the next batch of ids: parameters are the pad text and
     * the first and last id of the batch.
     */
    private static final class BulkStatement extends ConnectionClient {
        private final PreparedStatement statement;
        private final AtomicLong batches;
        private final int rows;

        BulkStatement(Connection connection, String sql, AtomicLong batches, int rows) throws SQLException {
            super(connection);
            this.batches = batches;
            this.rows = rows;
            statement = prepare(sql);
        }

        @Override
        public void transaction(SplittableRandom random) throws SQLException {
            long first = BULK_ID_BASE + batches.getAndIncrement() * rows;
            statement.setString(1, PAD.toUpperCase(Locale.ROOT));
            statement.setLong(2, first);
            statement.setLong(3, first + rows - 1);
            int changed = statement.executeUpdate();
            if (changed != rows) {
                throw new SQLException("expected to change " + rows + " rows, changed " + changed, "XX000");
            }
        }

    }
}
