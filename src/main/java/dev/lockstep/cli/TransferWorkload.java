package dev.lockstep.cli;

import javax.sql.DataSource;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The demo's application: clients that move money between accounts, each transfer one
 * transaction that also records it (and gets its id back), as an application would run them on a
 * {@link DataSource}: a connection per transaction, and a failed transaction tried again after a
 * short pause (a failover fails the transactions under way). It remembers the id of every
 * transfer whose commit was acknowledged, so that the demo can check none was lost.
 */
final class TransferWorkload implements AutoCloseable {

    static final int ACCOUNTS = 100;
    static final long OPENING_BALANCE = 1_000;
    private static final long RETRY_PAUSE_MILLIS = 50;

    private final DataSource ds;
    private final ExecutorService clients;
    private final AtomicBoolean stop = new AtomicBoolean();
    /** Each transfer's token (gen_random_uuid() on the principal): unlike a serial id, never handed out twice. */
    private final Set<UUID> acknowledged = ConcurrentHashMap.newKeySet();
    private final AtomicLong failed = new AtomicLong();
    private final AtomicReference<String> lastError = new AtomicReference<>();
    private volatile long faultNanos;
    private final AtomicLong firstAckAfterFault = new AtomicLong();

    private TransferWorkload(DataSource ds, int clientCount, long seed) {
        this.ds = ds;
        this.clients = Executors.newFixedThreadPool(clientCount, r -> {
            Thread t = new Thread(r, "demo-client");
            t.setDaemon(true);
            return t;
        });
        SplittableRandom seeds = new SplittableRandom(seed);
        for (int i = 0; i < clientCount; i++) {
            SplittableRandom random = seeds.split();
            clients.submit(() -> runClient(random));
        }
    }

    /** Creates the two tables (attached to mirroring by DDL capture) and the opening balances. */
    static void createSchema(DataSource ds) throws SQLException {
        try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE IF NOT EXISTS accounts (id int PRIMARY KEY, balance bigint NOT NULL,"
                    + " updated_at timestamptz DEFAULT now())");
            st.execute("INSERT INTO accounts (id, balance) SELECT g, " + OPENING_BALANCE + " FROM generate_series(1, " + ACCOUNTS
                    + ") g ON CONFLICT (id) DO NOTHING");
            st.execute("CREATE TABLE IF NOT EXISTS transfers (id bigserial PRIMARY KEY, src int, dst int, amount int,"
                    + " at timestamptz DEFAULT clock_timestamp(), token uuid DEFAULT gen_random_uuid())");
        }
    }

    /** Starts the clients. */
    static TransferWorkload start(DataSource ds, int clients, long seed) {
        return new TransferWorkload(ds, clients, seed);
    }

    private void runClient(SplittableRandom random) {
        while (!stop.get()) {
            long started = System.nanoTime();
            try {
                acknowledged.add(transfer(random));
                long now = System.nanoTime();
                long fault = faultNanos;
                if (fault != 0 && started - fault > 0) {
                    // Begun after the fault: it can only have committed on the new principal.
                    firstAckAfterFault.compareAndSet(0, now);
                }
            } catch (SQLException | RuntimeException e) {
                failed.incrementAndGet();
                lastError.set(e instanceof SQLException s ? s.getSQLState() + " " + s.getMessage() : e.toString());
                pause();
            }
        }
    }

    private UUID transfer(SplittableRandom random) throws SQLException {
        int src = 1 + random.nextInt(ACCOUNTS);
        int dst = 1 + random.nextInt(ACCOUNTS - 1);
        if (dst >= src) {
            dst++;
        }
        int amount = 1 + random.nextInt(100);
        try (Connection c = ds.getConnection()) {
            c.setAutoCommit(false);
            // Lower id first: two transfers over the same pair never deadlock.
            update(c, Math.min(src, dst), Math.min(src, dst) == src ? -amount : amount);
            update(c, Math.max(src, dst), Math.max(src, dst) == src ? -amount : amount);
            UUID token;
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO transfers (src, dst, amount) VALUES (?, ?, ?) RETURNING token")) {
                ps.setInt(1, src);
                ps.setInt(2, dst);
                ps.setInt(3, amount);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    token = rs.getObject(1, UUID.class);
                }
            }
            c.commit();
            return token;
        }
    }

    private static void update(Connection c, int account, int delta) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("UPDATE accounts SET balance = balance + ?, updated_at = now() WHERE id = ?")) {
            ps.setInt(1, delta);
            ps.setInt(2, account);
            ps.executeUpdate();
        }
    }

    private void pause() {
        try {
            Thread.sleep(RETRY_PAUSE_MILLIS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            stop.set(true);
        }
    }

    /** Transfers acknowledged so far. */
    long acknowledgedCount() {
        return acknowledged.size();
    }

    /** Notes the moment of a fault: {@link #firstAckAfterFault()} counts from transactions begun after it. */
    void markFault(long nanos) {
        faultNanos = nanos;
    }

    /** {@link System#nanoTime()} of the first acknowledgement of a transfer begun after the fault, 0 before it. */
    long firstAckAfterFault() {
        return firstAckAfterFault.get();
    }

    /** Tokens of the acknowledged transfers (a copy). */
    Set<UUID> acknowledgedTokens() {
        return Set.copyOf(acknowledged);
    }

    /** Transactions that failed (and were tried again as new ones). */
    long failedCount() {
        return failed.get();
    }

    /** The last error a client saw, or null. */
    String lastError() {
        return lastError.get();
    }

    /** Stops the clients, waiting at most {@code grace} for the transfers under way. */
    void stop(Duration grace) throws InterruptedException {
        stop.set(true);
        clients.shutdown();
        if (!clients.awaitTermination(grace.toMillis(), TimeUnit.MILLISECONDS)) {
            clients.shutdownNow();
        }
    }

    @Override
    public void close() throws InterruptedException {
        stop(Duration.ofSeconds(30));
    }
}
