package dev.lockstep.testing;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Non-destructive behaviour of one shared node; every fault is undone before the test ends. */
@Timeout(30)
class PgNodeTest {

    private static PgNode node;

    @BeforeAll
    static void startNode() {
        node = PgNode.start("shared");
    }

    @AfterAll
    static void closeNode() {
        if (node != null) {
            node.close();
        }
    }

    @Test
    void answersThroughTheProxyAndDirectly() throws SQLException {
        assertThat(node.host()).isEqualTo("127.0.0.1");
        assertThat(node.jdbcUrl("postgres")).isEqualTo("jdbc:postgresql://127.0.0.1:" + node.proxyPort() + "/postgres");
        assertThat(node.proxyPort()).isNotEqualTo(node.serverPort());
        assertThat(node.isRunning()).isTrue();
        try (Connection proxied = node.connect("postgres"); Connection direct = node.connectDirect("postgres")) {
            assertThat(queryOne(proxied, "SELECT 41 + 1")).isEqualTo("42");
            assertThat(queryOne(direct, "SELECT 41 + 1")).isEqualTo("42");
            String superuser = "SELECT rolsuper FROM pg_roles WHERE rolname = current_user";
            assertThat(queryOne(proxied, superuser)).isEqualTo("t");
        }
        try (Connection viaUrl = DriverManager.getConnection(node.directJdbcUrl("postgres"), node.user(), node.password())) {
            assertThat(queryOne(viaUrl, "SELECT current_user")).isEqualTo(node.user());
        }
    }

    @Test
    void hasTheDefaultSettings() throws SQLException {
        try (Connection c = node.connectDirect("postgres")) {
            assertThat(queryOne(c, "SHOW max_prepared_transactions")).isEqualTo("64");
            assertThat(queryOne(c, "SHOW max_connections")).isEqualTo("120");
            assertThat(queryOne(c, "SHOW synchronous_commit")).isEqualTo("on");
            assertThat(queryOne(c, "SHOW server_version")).startsWith("18");
            if (node.backend() instanceof EmbeddedBackend) {
                assertThat(queryOne(c, "SHOW listen_addresses")).isEqualTo("127.0.0.1");
            }
        }
    }

    @Test
    void serverConfigOverridesTheDefaults() throws SQLException {
        Map<String, String> config = Map.of("max_prepared_transactions", "0",
                "search_path", "\"$user\", public", "log_line_prefix", "%m [%p] it's ");
        try (PgNode other = PgNode.start("no-2pc", config); Connection c = other.connectDirect("postgres")) {
            assertThat(queryOne(c, "SHOW max_prepared_transactions")).isEqualTo("0");
            assertThat(queryOne(c, "SHOW max_connections")).isEqualTo("120");
            assertThat(queryOne(c, "SHOW search_path")).isEqualTo("\"$user\", public");
            assertThat(queryOne(c, "SHOW log_line_prefix")).isEqualTo("%m [%p] it's ");
            c.setAutoCommit(false);
            c.createStatement().execute("CREATE TABLE t (i int)");
            assertThatThrownBy(() -> c.createStatement().execute("PREPARE TRANSACTION 'x'"))
                    .hasMessageContaining("prepared transactions are disabled");
        }
    }

    @Test
    void createDatabaseGivesIsolatedDatabases() throws SQLException {
        String a = node.createDatabase("Iso-Test");
        String b = node.createDatabase("Iso-Test");
        assertThat(a).startsWith("iso_test_").isNotEqualTo(b);
        try (Connection ca = node.connect(a); Connection cb = node.connect(b)) {
            ca.createStatement().execute("CREATE TABLE only_here (id int)");
            ca.createStatement().execute("INSERT INTO only_here VALUES (1)");
            assertThat(queryOne(ca, "SELECT count(*) FROM only_here")).isEqualTo("1");
            assertThat(queryOne(cb, "SELECT to_regclass('only_here') IS NULL")).isEqualTo("t");
            assertThat(queryOne(cb, "SELECT current_database()")).isEqualTo(b);
        }
    }

    @Test
    void partitionBreaksOpenConnectionsAtOnceWhileDirectStillWorks() throws SQLException {
        try (Connection proxied = node.connect("postgres")) {
            assertThat(queryOne(proxied, "SELECT 1")).isEqualTo("1");
            node.proxy().partition();
            try {
                long started = System.nanoTime();
                assertConnectionFailure(() -> queryOne(proxied, "SELECT 1"));
                assertThat(Duration.ofNanos(System.nanoTime() - started)).isLessThan(Duration.ofSeconds(2));
                assertConnectionFailure(() -> node.connect("postgres").close());
                try (Connection direct = node.connectDirect("postgres")) {
                    assertThat(queryOne(direct, "SELECT 1")).isEqualTo("1");
                }
            } finally {
                node.proxy().heal();
            }
            try (Connection healed = node.connect("postgres")) {
                assertThat(queryOne(healed, "SELECT 1")).isEqualTo("1");
            }
        }
    }

    @Test
    void blackholeMakesAQueryHangUntilItsSocketTimeout() throws Exception {
        try (Connection proxied = connectThroughProxy(1)) {
            assertThat(queryOne(proxied, "SELECT 1")).isEqualTo("1");
            int open = node.proxy().openConnections();
            node.proxy().blackhole();
            try {
                long started = System.nanoTime();
                CompletableFuture<String> query = CompletableFuture.supplyAsync(() -> queryUnchecked(proxied, "SELECT 1"));
                await().during(Duration.ofMillis(700)).atMost(Duration.ofSeconds(1))
                        .until(() -> !query.isDone() && node.proxy().openConnections() == open);
                Throwable failure = awaitFailure(query);
                assertThat(Duration.ofNanos(System.nanoTime() - started)).isBetween(Duration.ofMillis(900), Duration.ofSeconds(5));
                assertThat(failure).isInstanceOf(SQLException.class);
                assertThat(((SQLException) failure).getSQLState()).startsWith("08");
            } finally {
                node.proxy().heal();
            }
            try (Connection healed = connectThroughProxy(1)) {
                assertThat(queryOne(healed, "SELECT 1")).isEqualTo("1");
            }
        }
    }

    @Test
    void blackholedConnectionResumesOnHeal() throws Exception {
        try (Connection proxied = node.connect("postgres")) {
            assertThat(queryOne(proxied, "SELECT 1")).isEqualTo("1");
            node.proxy().blackhole();
            CompletableFuture<String> query;
            try {
                query = CompletableFuture.supplyAsync(() -> queryUnchecked(proxied, "SELECT 2"));
                await().during(Duration.ofMillis(300)).atMost(Duration.ofSeconds(1)).until(() -> !query.isDone());
            } finally {
                node.proxy().heal();
            }
            assertThat(query.get(5, TimeUnit.SECONDS)).isEqualTo("2");
        }
    }

    @Test
    void freezeMakesQueriesTimeOutAndThawRevivesTheServer() throws Exception {
        try (Connection idle = node.connectDirect("postgres"); Connection proxied = connectThroughProxy(1)) {
            assertThat(queryOne(proxied, "SELECT 1")).isEqualTo("1");
            node.freeze();
            try {
                assertThat(node.isRunning()).isTrue();
                long started = System.nanoTime();
                assertConnectionFailure(() -> queryOne(proxied, "SELECT 1"));
                assertThat(Duration.ofNanos(System.nanoTime() - started)).isBetween(Duration.ofMillis(900), Duration.ofSeconds(5));
            } finally {
                node.thaw();
            }
            assertThat(queryOne(idle, "SELECT 1")).as("a connection that waited through the freeze").isEqualTo("1");
            try (Connection fresh = connectThroughProxy(1)) {
                assertThat(queryOne(fresh, "SELECT 1")).isEqualTo("1");
            }
        }
    }

    private static Connection connectThroughProxy(int socketTimeoutSeconds) throws SQLException {
        Properties props = new Properties();
        props.setProperty("user", node.user());
        props.setProperty("password", node.password());
        props.setProperty("socketTimeout", Integer.toString(socketTimeoutSeconds));
        return DriverManager.getConnection(node.jdbcUrl("postgres"), props);
    }

    static String queryOne(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
            assertThat(rs.next()).isTrue();
            return rs.getString(1);
        }
    }

    private static String queryUnchecked(Connection c, String sql) {
        try {
            return queryOne(c, sql);
        } catch (SQLException e) {
            throw new java.util.concurrent.CompletionException(e);
        }
    }

    private static Throwable awaitFailure(CompletableFuture<?> future) throws Exception {
        try {
            future.get(5, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            return e.getCause();
        }
        throw new AssertionError("expected the query to fail");
    }

    /**
     * The call fails as a lost link: a connection exception (class 08), or 57P01-57P03 from a
     * backend that saw its postmaster die before its own SIGKILL arrived.
     */
    static void assertConnectionFailure(SqlCall call) {
        assertThatThrownBy(call::run).isInstanceOfSatisfying(SQLException.class,
                e -> assertThat(e.getSQLState()).as(e.toString()).matches("08...|57P0[123]"));
    }

    @FunctionalInterface
    interface SqlCall {
        void run() throws SQLException;
    }
}
