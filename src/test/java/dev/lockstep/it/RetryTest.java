package dev.lockstep.it;

import dev.lockstep.Lockstep;
import dev.lockstep.LockstepDataSource;
import org.junit.jupiter.api.Test;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static dev.lockstep.it.TwoNodes.value;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/** The retrying unit of work against real conflicts and a cut link. */
class RetryTest extends OnTwoNodes {

    private static final Lockstep.RetryPolicy PATIENT = new Lockstep.RetryPolicy(100, Duration.ofMillis(5), Duration.ofMillis(200));

    @Test
    void serializationFailuresAreRetriedUntilEveryIncrementLands() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("retry");
        AtomicInteger attempts = new AtomicInteger();
        try (LockstepDataSource ds = pair.start()) {
            TwoNodes.acknowledged(ds, "CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL)");
            TwoNodes.acknowledged(ds, "INSERT INTO counter VALUES (1, 0)");
            ExecutorService pool = Executors.newFixedThreadPool(4);
            List<Future<?>> done = new ArrayList<>();
            for (int t = 0; t < 4; t++) {
                done.add(pool.submit(() -> {
                    for (int i = 0; i < 25; i++) {
                        Lockstep.inTransaction(ds, PATIENT, c -> {
                            attempts.incrementAndGet();
                            try (Statement st = c.createStatement()) {
                                st.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE");
                                int n;
                                try (ResultSet rs = st.executeQuery("SELECT n FROM counter WHERE id = 1")) {
                                    rs.next();
                                    n = rs.getInt(1);
                                }
                                st.executeUpdate("UPDATE counter SET n = " + (n + 1) + " WHERE id = 1");
                            }
                            return null;
                        });
                    }
                    return null;
                }));
            }
            for (Future<?> f : done) {
                f.get(120, TimeUnit.SECONDS);
            }
            pool.shutdown();
            assertThat(ds.partnership().verify().identical()).isTrue();
        }
        try (Connection p = pair.principal(); Connection m = pair.mirror()) {
            assertThat(value(p, "SELECT n FROM counter")).isEqualTo(100);
            assertThat(value(m, "SELECT n FROM counter")).isEqualTo(100);
        }
        // Lost updates were prevented by conflicts, and the conflicts were retried.
        assertThat(attempts.get()).isGreaterThan(100);
    }

    @Test
    void otherErrorsFailAtOnce() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("noretry");
        AtomicInteger attempts = new AtomicInteger();
        try (LockstepDataSource ds = pair.start()) {
            TwoNodes.acknowledged(ds, "CREATE TABLE t (id int PRIMARY KEY)");
            TwoNodes.acknowledged(ds, "INSERT INTO t VALUES (1)");
            assertThatThrownBy(() -> Lockstep.inTransaction(ds, PATIENT, c -> {
                attempts.incrementAndGet();
                try (Statement st = c.createStatement()) {
                    return st.executeUpdate("INSERT INTO t VALUES (1)");
                }
            })).isInstanceOfSatisfying(SQLException.class, e -> assertThat(e.getSQLState()).isEqualTo("23505"));
        }
        assertThat(attempts.get()).isEqualTo(1);
        assertThatThrownBy(() -> new Lockstep.RetryPolicy(0, Duration.ofMillis(1), Duration.ofMillis(1)))
                .hasMessageContaining("'maxAttempts'");
    }

    @Test
    void aCutLinkToThePrincipalIsRetriedUntilItHeals() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("cutlink");
        AtomicInteger attempts = new AtomicInteger();
        try (LockstepDataSource ds = pair.start()) {
            TwoNodes.acknowledged(ds, "CREATE TABLE t (id int PRIMARY KEY)");
            nodes.a().proxy().partition();
            ExecutorService pool = Executors.newSingleThreadExecutor();
            try {
                javax.sql.DataSource counting = (javax.sql.DataSource) java.lang.reflect.Proxy.newProxyInstance(
                        getClass().getClassLoader(), new Class<?>[] {javax.sql.DataSource.class}, (proxy, method, args) -> {
                            if (method.getName().equals("getConnection")) {
                                attempts.incrementAndGet();
                            }
                            try {
                                return method.invoke(ds, args);
                            } catch (java.lang.reflect.InvocationTargetException e) {
                                throw e.getCause();
                            }
                        });
                Future<Integer> result = pool.submit(() -> Lockstep.inTransaction(counting, PATIENT, c -> {
                    try (Statement st = c.createStatement()) {
                        return st.executeUpdate("INSERT INTO t VALUES (7) ON CONFLICT DO NOTHING");
                    }
                }));
                await().atMost(Duration.ofSeconds(30)).until(() -> attempts.get() >= 2);
                nodes.a().proxy().heal();
                result.get(60, TimeUnit.SECONDS);
            } finally {
                nodes.a().proxy().heal();
                pool.shutdownNow();
            }
        }
        try (Connection p = pair.principal(); Connection m = pair.mirror()) {
            assertThat(value(p, "SELECT count(*) FROM t WHERE id = 7")).isEqualTo(1L);
            assertThat(value(m, "SELECT count(*) FROM t WHERE id = 7")).isEqualTo(1L);
        }
    }
}
