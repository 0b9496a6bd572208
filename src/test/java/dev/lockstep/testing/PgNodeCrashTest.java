package dev.lockstep.testing;

import dev.lockstep.embedded.EmbeddedServer;
import static dev.lockstep.testing.PgNodeTest.assertConnectionFailure;
import static dev.lockstep.testing.PgNodeTest.queryOne;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;

/** kill, stop and restart on one node; each test leaves it running or down, never frozen. */
@Timeout(60)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class PgNodeCrashTest {

    private PgNode node;
    private String db;

    @BeforeAll
    void startNode() {
        node = PgNode.start("crash");
    }

    @AfterAll
    void closeNode() {
        if (node != null) {
            node.close();
        }
    }

    @BeforeEach
    void freshDatabase() throws SQLException {
        if (!node.isRunning()) {
            node.restart();
        }
        db = node.createDatabase("crash");
        try (Connection c = node.connect(db); Statement s = c.createStatement()) {
            s.execute("CREATE TABLE acked (id int PRIMARY KEY)");
        }
    }

    @Test
    void killLeavesNoProcessAndRestartRecoversCommittedAndPreparedWorkOnTheSamePort() throws SQLException {
        int serverPort = node.serverPort();
        int proxyPort = node.proxyPort();
        try (Connection c = node.connect(db); Statement s = c.createStatement()) {
            for (int i = 1; i <= 100; i++) {
                s.execute("INSERT INTO acked VALUES (" + i + ")");
            }
            c.setAutoCommit(false);
            s.execute("INSERT INTO acked VALUES (1000)");
            s.execute("PREPARE TRANSACTION 'in-doubt'");
        }
        List<Long> pids = embeddedProcessIds();
        try (Connection proxied = node.connect(db); Connection direct = node.connectDirect(db)) {
            node.kill();

            assertThat(node.isRunning()).isFalse();
            assertThat(pids).allSatisfy(pid -> assertThat(EmbeddedServer.isProcessAlive(pid)).as("pid %d", pid).isFalse());
            assertConnectionFailure(() -> queryOne(proxied, "SELECT 1"));
            assertConnectionFailure(() -> queryOne(direct, "SELECT 1"));
            assertConnectionFailure(() -> node.connectDirect(db).close());
            assertConnectionFailure(() -> node.connect(db).close());
        }

        node.restart();

        assertThat(node.isRunning()).isTrue();
        assertThat(node.proxyPort()).isEqualTo(proxyPort);
        if (node.backend() instanceof EmbeddedBackend) {
            assertThat(node.serverPort()).isEqualTo(serverPort);
        }
        try (Connection c = node.connect(db); Statement s = c.createStatement()) {
            assertThat(queryOne(c, "SELECT count(*) FROM acked")).isEqualTo("100");
            assertThat(queryOne(c, "SELECT gid FROM pg_prepared_xacts")).isEqualTo("in-doubt");
            s.execute("COMMIT PREPARED 'in-doubt'");
            assertThat(queryOne(c, "SELECT count(*) FROM acked")).isEqualTo("101");
        }
    }

    @Test
    void killAFrozenNodeAndKillAgainAfterRestart() throws SQLException {
        node.freeze();
        node.kill();
        assertThat(node.isRunning()).isFalse();
        node.kill(); // already down: nothing to do
        node.restart();
        node.kill();
        node.restart();
        try (Connection c = node.connect(db)) {
            assertThat(queryOne(c, "SELECT count(*) FROM acked")).isEqualTo("0");
        }
    }

    @Test
    void stopShutsDownCleanlyAndRestartComesBack() throws SQLException {
        try (Connection c = node.connect(db)) {
            c.createStatement().execute("INSERT INTO acked VALUES (7)");
        }
        List<Long> pids = embeddedProcessIds();
        node.stop();
        assertThat(node.isRunning()).isFalse();
        assertThat(pids).allSatisfy(pid -> assertThat(EmbeddedServer.isProcessAlive(pid)).isFalse());
        assertThatThrownBy(() -> node.connectDirect(db)).isInstanceOf(SQLException.class);

        node.restart();
        assertThatThrownBy(node::restart).as("restart of a running node").isInstanceOf(IllegalStateException.class);
        try (Connection c = node.connect(db)) {
            assertThat(queryOne(c, "SELECT id FROM acked")).isEqualTo("7");
        }
    }

    private List<Long> embeddedProcessIds() {
        return embeddedProcessIds(node);
    }

    /** The node's processes (postmaster first); empty for a container. */
    static List<Long> embeddedProcessIds(PgNode node) {
        if (!(node.backend() instanceof EmbeddedBackend)) {
            return List.of();
        }
        List<Long> pids = ((EmbeddedBackend) node.backend()).processIds();
        assertThat(pids).hasSizeGreaterThan(3); // postmaster, checkpointer, walwriter, backends...
        return pids;
    }
}
