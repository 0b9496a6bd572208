package dev.lockstep.it;

import dev.lockstep.LockstepConfig;
import dev.lockstep.LockstepDataSource;
import dev.lockstep.NodeConfig;
import dev.lockstep.testing.PgNode;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * Two real PostgreSQL servers shared by the tests of one class; every test gets a fresh pair of
 * databases (one on each server) for its own partnership.
 */
public final class TwoNodes implements AutoCloseable {

    private final PgNode a;
    private final PgNode b;

    private TwoNodes(PgNode a, PgNode b) {
        this.a = a;
        this.b = b;
    }

    public static TwoNodes start() {
        return new TwoNodes(PgNode.start("node-a"), PgNode.start("node-b"));
    }

    public PgNode a() {
        return a;
    }

    public PgNode b() {
        return b;
    }

    /** A fresh partnership of two new empty databases. */
    public Pair newPair(String partnership) {
        return new Pair(partnership, a.createDatabase(partnership), b.createDatabase(partnership));
    }

    /** One partnership's databases and how to reach them. */
    public final class Pair {
        private final String partnership;
        private final String dbA;
        private final String dbB;

        Pair(String partnership, String dbA, String dbB) {
            this.partnership = partnership;
            this.dbA = dbA;
            this.dbB = dbB;
        }

        public String partnership() {
            return partnership;
        }

        /** A configuration through the proxies, with short timeouts suited to tests. */
        public LockstepConfig.Builder config() {
            return LockstepConfig.builder()
                    .partnership(partnership)
                    .principal(NodeConfig.of("node-a", a.jdbcUrl(dbA), a.user(), a.password()))
                    .mirror(NodeConfig.of("node-b", b.jdbcUrl(dbB), b.user(), b.password()))
                    .poolSize(8)
                    .remoteCallTimeout(Duration.ofSeconds(1))
                    .connectTimeout(Duration.ofSeconds(2))
                    .inDoubtGrace(Duration.ofSeconds(5))
                    .resolverInterval(Duration.ofMillis(300));
        }

        public LockstepDataSource start() throws SQLException {
            return LockstepDataSource.start(config().build());
        }

        /** A superuser connection straight to the principal's database (autocommit on). */
        public Connection principal() throws SQLException {
            return a.connectDirect(dbA);
        }

        /** A superuser connection straight to the mirror's database (autocommit on). */
        public Connection mirror() throws SQLException {
            return b.connectDirect(dbB);
        }

        public String dbA() {
            return dbA;
        }

        public String dbB() {
            return dbB;
        }
    }

    /** Every row a query returns, as lists of column values. */
    public static List<List<Object>> rows(Connection c, String sql) throws SQLException {
        List<List<Object>> rows = new ArrayList<>();
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(sql)) {
            ResultSetMetaData md = rs.getMetaData();
            while (rs.next()) {
                List<Object> row = new ArrayList<>();
                for (int i = 1; i <= md.getColumnCount(); i++) {
                    row.add(rs.getObject(i));
                }
                rows.add(row);
            }
        }
        return rows;
    }

    /** The single value a query returns. */
    public static Object value(Connection c, String sql) throws SQLException {
        List<List<Object>> rows = rows(c, sql);
        if (rows.size() != 1 || rows.get(0).size() != 1) {
            throw new IllegalStateException("expected one value from " + sql + ", got " + rows);
        }
        return rows.get(0).get(0);
    }

    /** Runs one statement in its own transaction through the data source; true when acknowledged. */
    public static boolean acknowledged(javax.sql.DataSource ds, String sql) {
        try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute(sql);
            return true;
        } catch (SQLException e) {
            return false;
        }
    }

    /**
     * Runs an idempotent statement until it is acknowledged, at most 10 s, as an application
     * retries: right after the mirroring state changed a commit may be refused once (40001) until
     * the coordinator has looked again.
     */
    public static boolean acknowledgedWithRetries(javax.sql.DataSource ds, String idempotentSql) {
        try {
            org.awaitility.Awaitility.await().atMost(java.time.Duration.ofSeconds(10)).pollInterval(java.time.Duration.ofMillis(100))
                    .until(() -> acknowledged(ds, idempotentSql));
            return true;
        } catch (org.awaitility.core.ConditionTimeoutException e) {
            return false;
        }
    }

    /**
     * Waits (at most 10 s) until a backend on the pair's mirror sleeps in {@code pg_sleep}: an
     * apply slowed by a sleeping constraint or trigger is under way there.
     */
    public static void awaitApplyUnderWay(Pair pair) throws SQLException {
        try (Connection m = pair.mirror()) {
            awaitSleepingBackend(m);
        }
    }

    /** Waits (at most 10 s) until a backend of the connection's database sleeps in {@code pg_sleep}. */
    public static void awaitSleepingBackend(Connection c) {
        org.awaitility.Awaitility.await().atMost(Duration.ofSeconds(10)).until(() -> (Long) value(c,
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND datname = current_database()") > 0);
    }

    /**
     * Runs one statement through the data source (autocommit) on the client thread.
     *
     * @return its failure, or null once it committed
     */
    public static java.util.concurrent.Future<SQLException> attempt(java.util.concurrent.ExecutorService client,
                                                                   javax.sql.DataSource ds, String sql) {
        return client.submit(() -> {
            try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
                st.execute(sql);
                return null;
            } catch (SQLException e) {
                return e;
            }
        });
    }

    /** Lockstep's prepared transactions in the connection's database. */
    public static List<List<Object>> lockstepPrepared(Connection c) throws SQLException {
        return rows(c, "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND gid LIKE 'lockstep:%'");
    }

    @Override
    public void close() {
        a.close();
        b.close();
    }
}
