package dev.lockstep.testing;

import dev.lockstep.embedded.EmbeddedServer;
import static dev.lockstep.testing.PgNodeCrashTest.embeddedProcessIds;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** close() leaves nothing behind, whatever state the node is in. */
@Timeout(60)
class PgNodeCloseTest {

    @Test
    void closeOfAFrozenNodeRemovesServerAndDataAndIsIdempotent() {
        PgNode node = PgNode.start("close-frozen");
        List<Long> pids = embeddedProcessIds(node);
        Path dir = nodeDirectory(node);
        node.freeze(); // close thaws first

        node.close();
        node.close();

        assertGone(node, pids, dir);
        assertThatThrownBy(node::kill).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(node::restart).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void closeAfterKillRemovesEverything() {
        PgNode node = PgNode.start("close-killed");
        List<Long> pids = embeddedProcessIds(node);
        Path dir = nodeDirectory(node);
        node.kill();

        node.close();

        assertGone(node, pids, dir);
    }

    @Test
    void aNodeLeftByADeadJvmIsSweptByTheNextStart() throws Exception {
        PgNode orphan = PgNode.start("orphan");
        List<Long> pids = embeddedProcessIds(orphan);
        Path dir = nodeDirectory(orphan);
        if (dir == null) {
            orphan.close();
            return; // containers are reaped by Testcontainers, not by the sweep
        }
        Process gone = new ProcessBuilder("true").start();
        gone.waitFor();
        Files.writeString(dir.resolve("owner"), gone.pid() + " 1"); // as if its JVM had died

        EmbeddedServer.sweepStaleDirectories();

        assertGone(orphan, pids, dir);
        orphan.close(); // must cope with a node swept from under it
    }

    private static void assertGone(PgNode node, List<Long> pids, Path dir) {
        assertThat(node.isRunning()).isFalse();
        assertThat(pids).allSatisfy(pid -> assertThat(EmbeddedServer.isProcessAlive(pid)).as("pid %d", pid).isFalse());
        if (dir != null) {
            assertThat(Files.exists(dir)).as("node directory %s", dir).isFalse();
        }
    }

    private static Path nodeDirectory(PgNode node) {
        return node.backend() instanceof EmbeddedBackend
                ? ((EmbeddedBackend) node.backend()).logFile().getParent() : null;
    }
}
