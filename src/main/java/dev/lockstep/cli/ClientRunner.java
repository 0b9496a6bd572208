package dev.lockstep.cli;

import java.sql.Connection;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.LongConsumer;

/**
 * Runs client threads, each on a connection of its own, doing one transaction after another
 * until a time limit or a total number of transactions is reached, whichever comes first. The
 * clock starts once every client is connected. Each transaction is timed whole (statements,
 * commit and any retries) and retried on 40001/40P01 up to {@link #MAX_ATTEMPTS} attempts.
 * One run at a time: {@link #run} is not meant to be called concurrently.
 */
public final class ClientRunner {

    /** Attempts per transaction, the first included. */
    public static final int MAX_ATTEMPTS = 20;
    /** A client gives up after this many transactions in a row failed. */
    public static final int MAX_CONSECUTIVE_FAILURES = 10;
    /** How long connecting the clients may take. */
    private static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(30);
    /** How long the clients may take to finish the transaction they are in when time is up. */
    private static final Duration FINISH_GRACE = Duration.ofSeconds(30);

    /** One client: a connection and the statements of its transaction. */
    public interface Client extends AutoCloseable {
        /** The connection the transactions run on (autocommit off). */
        Connection connection();

        /** The statements of one transaction, without the commit. */
        void transaction(SplittableRandom random) throws SQLException;

        /** Releases the connection and statements. */
        @Override
        void close() throws SQLException;
    }

    /** Opens the client with the given index (0-based). */
    @FunctionalInterface
    public interface ClientFactory {
        Client open(int index) throws SQLException;
    }

    /**
     * What a run did.
     *
     * @param committed   transactions committed
     * @param retries     retries after 40001/40P01
     * @param failed      transactions that failed for good
     * @param elapsed     from the start signal until the last client stopped
     * @param latencies   per committed transaction
     * @param firstError  the first failure, or null
     * @param unfinished  whether a client was still busy after the grace period and was abandoned
     */
    public record Result(long committed, long retries, long failed, Duration elapsed, LatencyRecorder latencies,
                         String firstError, boolean unfinished) {
        /** Committed transactions per second. */
        public double perSecond() {
            double seconds = elapsed.toNanos() / 1e9;
            return seconds <= 0 ? 0 : committed / seconds;
        }
    }

    private final int clients;
    private final ClientFactory factory;
    private final long seed;
    /** Runs so far; each run's clients draw other random numbers. */
    private int runs;

    /**
     * @param clients how many client threads
     * @param factory opens each client's connection and statements
     * @param seed    seeds the clients' random numbers (client i of run r uses seed + 1000 r + i)
     */
    public ClientRunner(int clients, ClientFactory factory, long seed) {
        if (clients < 1) {
            throw new IllegalArgumentException("clients must be at least 1, got " + clients);
        }
        this.clients = clients;
        this.factory = factory;
        this.seed = seed;
    }

    /**
     * Runs until {@code limit} has passed or {@code maxTransactions} have been started.
     *
     * @param limit           the time limit
     * @param maxTransactions the most transactions to start (use {@link Long#MAX_VALUE} for none)
     * @param progress        called about once a second with the committed count so far (may be null)
     * @return what the run did
     */
    public Result run(Duration limit, long maxTransactions, LongConsumer progress) throws InterruptedException {
        RunState state = new RunState(maxTransactions, seed + 1_000L * runs++);
        AtomicInteger threadNumber = new AtomicInteger();
        ExecutorService threads = Executors.newFixedThreadPool(clients, r -> {
            Thread t = new Thread(r, "client-" + threadNumber.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        long start;
        long end;
        boolean unfinished;
        try {
            for (int i = 0; i < clients; i++) {
                int index = i;
                threads.execute(() -> {
                    try {
                        state.runClient(index);
                    } catch (Error e) {
                        state.fail("client " + index + " died: " + e);
                        throw e;
                    } finally {
                        state.finished.countDown();
                    }
                });
            }
            if (!state.connected.await(CONNECT_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)) {
                state.stop.set(true);
                state.fail("clients did not connect within " + CONNECT_TIMEOUT);
            }
            start = System.nanoTime();
            state.deadline = start + limit.toNanos();
            state.go.countDown();
            long hardStop = state.deadline + FINISH_GRACE.toNanos();
            while (!state.finished.await(1, TimeUnit.SECONDS)) {
                if (progress != null) {
                    progress.accept(state.committed.get());
                }
                if (System.nanoTime() > hardStop) {
                    break;
                }
            }
            end = System.nanoTime();
            unfinished = state.finished.getCount() > 0;
            if (unfinished) {
                state.fail(state.finished.getCount() + " clients still busy " + FINISH_GRACE + " after the time limit");
            }
        } finally {
            state.stop.set(true);
            state.go.countDown();
            threads.shutdown();
            if (!threads.awaitTermination(5, TimeUnit.SECONDS)) {
                threads.shutdownNow();
            }
        }
        return new Result(state.committed.get(), state.retries.get(), state.failed.get(), Duration.ofNanos(end - start),
                LatencyRecorder.merge(state.latencies), state.firstError.get(), unfinished);
    }

    /** What the clients of one run share. */
    private final class RunState {
        final AtomicLong tickets;
        final long runSeed;
        final AtomicLong committed = new AtomicLong();
        final AtomicLong retries = new AtomicLong();
        final AtomicLong failed = new AtomicLong();
        final AtomicReference<String> firstError = new AtomicReference<>();
        final AtomicBoolean stop = new AtomicBoolean();
        final CountDownLatch connected = new CountDownLatch(clients);
        final CountDownLatch go = new CountDownLatch(1);
        final CountDownLatch finished = new CountDownLatch(clients);
        final List<LatencyRecorder> latencies = new ArrayList<>();
        /** System.nanoTime() at which no new transaction starts; written before {@link #go} opens. */
        long deadline;

        RunState(long maxTransactions, long runSeed) {
            this.tickets = new AtomicLong(maxTransactions);
            this.runSeed = runSeed;
            for (int i = 0; i < clients; i++) {
                latencies.add(new LatencyRecorder());
            }
        }

        void fail(String message) {
            firstError.compareAndSet(null, message);
        }

        void runClient(int index) {
            Client client;
            try {
                client = factory.open(index);
            } catch (SQLException | RuntimeException e) {
                fail("client " + index + " could not connect: " + describe(e));
                return;
            } finally {
                connected.countDown();
            }
            SplittableRandom random = new SplittableRandom(runSeed + index);
            LatencyRecorder recorder = latencies.get(index);
            try (client) {
                if (!go.await(CONNECT_TIMEOUT.toMillis() * 2, TimeUnit.MILLISECONDS)) {
                    return;
                }
                int failuresInARow = 0;
                while (!stop.get() && System.nanoTime() < deadline && tickets.getAndDecrement() > 0) {
                    long t0 = System.nanoTime();
                    try {
                        int r = Transactions.commitWithRetry(client.connection(), MAX_ATTEMPTS, () -> client.transaction(random));
                        recorder.record(System.nanoTime() - t0);
                        retries.addAndGet(r);
                        committed.incrementAndGet();
                        failuresInARow = 0;
                    } catch (SQLException | RuntimeException e) {
                        failed.incrementAndGet();
                        fail("client " + index + ": " + describe(e));
                        if (++failuresInARow >= MAX_CONSECUTIVE_FAILURES) {
                            fail("client " + index + " gave up after " + failuresInARow + " failures in a row");
                            return;
                        }
                    }
                }
            } catch (SQLException e) {
                fail("client " + index + " failed to close: " + describe(e));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /** A failure with its SQLSTATE, on one line. */
    static String describe(Exception e) {
        String state = e instanceof SQLException s && s.getSQLState() != null ? " [SQLSTATE " + s.getSQLState() + "]" : "";
        return (e.getMessage() == null ? e.toString() : e.getMessage()).replace('\n', ' ') + state;
    }
}
