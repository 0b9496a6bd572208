package dev.lockstep.it;

import dev.lockstep.LockstepDataSource;
import org.junit.jupiter.api.Test;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static dev.lockstep.it.TwoNodes.lockstepPrepared;
import static dev.lockstep.it.TwoNodes.rows;
import static dev.lockstep.it.TwoNodes.value;
import static org.assertj.core.api.Assertions.assertThat;

/** I1, I2, I3 under contention: many concurrent transfers over a few hot accounts. */
class BankWorkloadTest extends OnTwoNodes {

    private static final int THREADS = 16;
    private static final int TRANSFERS = 10_000;
    private static final int ACCOUNTS = 10;
    private static final long INITIAL = 1_000_000;

    @Test
    void concurrentTransfersLeaveBothNodesIdenticalAndBalanced() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("bank");
        try (LockstepDataSource ds = LockstepDataSource.start(pair.config().poolSize(THREADS).build())) {
            try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
                st.execute("CREATE TABLE account (id int PRIMARY KEY, balance bigint NOT NULL)");
                st.execute("CREATE TABLE transfer (id bigserial PRIMARY KEY, src int NOT NULL, dst int NOT NULL,"
                        + " amount bigint NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())");
                st.execute("INSERT INTO account SELECT g, " + INITIAL + " FROM generate_series(1, " + ACCOUNTS + ") g");
            }
            AtomicInteger committed = new AtomicInteger();
            AtomicInteger retried = new AtomicInteger();
            ExecutorService pool = Executors.newFixedThreadPool(THREADS);
            List<Future<?>> workers = new ArrayList<>();
            for (int t = 0; t < THREADS; t++) {
                int seed = t;
                workers.add(pool.submit(() -> transfer(ds, seed, TRANSFERS / THREADS, committed, retried)));
            }
            for (Future<?> w : workers) {
                w.get(5, TimeUnit.MINUTES);
            }
            pool.shutdown();
            assertThat(committed.get()).isEqualTo(TRANSFERS);
            assertThat(ds.partnership().verify().identical()).isTrue();
        }
        try (Connection p = pair.principal(); Connection m = pair.mirror()) {
            for (String table : List.of("account", "transfer")) {
                assertThat(rows(m, "SELECT * FROM " + table + " ORDER BY id"))
                        .as("row-by-row " + table).isEqualTo(rows(p, "SELECT * FROM " + table + " ORDER BY id"));
            }
            assertThat(value(p, "SELECT sum(balance) FROM account")).isEqualTo(java.math.BigDecimal.valueOf(INITIAL * ACCOUNTS));
            assertThat(value(m, "SELECT sum(balance) FROM account")).isEqualTo(java.math.BigDecimal.valueOf(INITIAL * ACCOUNTS));
            assertThat(value(p, "SELECT count(*) FROM transfer")).isEqualTo((long) TRANSFERS);
            assertThat(lockstepPrepared(p)).isEmpty();
            assertThat(lockstepPrepared(m)).isEmpty();
        }
    }

    private static Void transfer(LockstepDataSource ds, int seed, int count, AtomicInteger committed, AtomicInteger retried)
            throws SQLException {
        SplittableRandom random = new SplittableRandom(seed);
        try (Connection c = ds.getConnection()) {
            c.setAutoCommit(false);
            // Accounts are locked in id order, as a bank would, so that transfers queue rather than deadlock.
            try (PreparedStatement move = c.prepareStatement("UPDATE account SET balance = balance + ? WHERE id = ?");
                 PreparedStatement log = c.prepareStatement("INSERT INTO transfer (src, dst, amount) VALUES (?, ?, ?)")) {
                for (int i = 0; i < count; ) {
                    int src = 1 + random.nextInt(ACCOUNTS);
                    int dst = 1 + (src + random.nextInt(ACCOUNTS - 1)) % ACCOUNTS;
                    long amount = 1 + random.nextInt(100);
                    try {
                        for (int account : new int[] {Math.min(src, dst), Math.max(src, dst)}) {
                            move.setLong(1, account == src ? -amount : amount);
                            move.setInt(2, account);
                            move.executeUpdate();
                        }
                        log.setInt(1, src);
                        log.setInt(2, dst);
                        log.setLong(3, amount);
                        log.executeUpdate();
                        c.commit();
                        committed.incrementAndGet();
                        i++;
                    } catch (SQLException e) {
                        if (!"40P01".equals(e.getSQLState()) && !"40001".equals(e.getSQLState())) {
                            throw e;
                        }
                        c.rollback();
                        retried.incrementAndGet();
                    }
                }
            }
        }
        return null;
    }
}
