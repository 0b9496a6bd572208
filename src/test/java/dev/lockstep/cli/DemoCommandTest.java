package dev.lockstep.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;

/** The main job end to end on embedded servers: kill, failover, rejoin, summary and report. */
class DemoCommandTest {

    @Test
    void demoFailsOverRejoinsAndLosesNothing(@TempDir Path dir) throws Exception {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8);
        Path report = dir.resolve("report.html");

        DemoCommand.Summary summary = new DemoCommand(DemoCommand.Options.embedded(4, 2, report), out).run();

        String printed = bytes.toString(StandardCharsets.UTF_8);
        assertThat(summary.acknowledged()).as(printed).isPositive();
        assertThat(summary.lost()).as(printed).isZero();
        assertThat(summary.failovers()).as(printed).isGreaterThanOrEqualTo(1);
        assertThat(summary.failoverMillis()).as(printed).isPositive();
        assertThat(summary.rejoined()).as(printed).isTrue();
        assertThat(summary.verifyIdentical()).as(printed).isTrue();
        assertThat(summary.balancesKept()).as(printed).isTrue();
        assertThat(summary.exitCode()).isZero();
        assertThat(printed).contains("demo: principal node-a SIGKILLed", "demo: failover: node-b serves as principal at epoch 2",
                "demo: node-a rejoined as mirror: SYNCHRONIZED", "demo: summary acknowledged=" + summary.acknowledged() + " lost=0");
        String html = Files.readString(report);
        assertThat(html).contains("<svg", "id=\"demo-data\"", "\"state\":\"DISCONNECTED\"", "\"epoch\":2", "killed (SIGKILL)",
                "failover (automatic) to node-b");
    }
}
