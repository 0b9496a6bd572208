package dev.lockstep.it;

import dev.lockstep.cli.Args;
import dev.lockstep.cli.DemoCommand;
import dev.lockstep.core.PartnershipRecord;
import dev.lockstep.testing.PgNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * The docker-compose demo's command, {@code demo --principal/--mirror/--witness}, against local
 * servers, with the principal killed and restarted from outside as {@code failover-demo.sh} does.
 */
class DemoExternalServersTest extends OnTwoNodesAndWitness {

    @Test
    void demoOnExternalServersSeesTheFailoverAndLosesNothing(@TempDir Path dir) throws Exception {
        TwoNodes.Pair pair = nodes.newPair("demoext");
        PgNode a = nodes.a();
        Path report = dir.resolve("report.html");
        DemoCommand.Options options = DemoCommand.Options.from(Args.parse("demo", List.of(
                "--principal", a.jdbcUrl(pair.dbA()), "--mirror", nodes.b().jdbcUrl(pair.dbB()),
                "--witness", witness.config().jdbcUrl(), "--user", a.user(), "--password", a.password(),
                "--seconds", "25", "--clients", "4", "--report", report.toString()), DemoCommand.OPTIONS));
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8);

        CompletableFuture<DemoCommand.Summary> run = CompletableFuture.supplyAsync(() -> {
            try {
                return new DemoCommand(options, out).run();
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        });
        await().atMost(Duration.ofSeconds(60)).until(() -> bytes.toString(StandardCharsets.UTF_8).contains("acknowledged="));
        a.kill();
        try {
            await().atMost(Duration.ofSeconds(30)).ignoreExceptions().until(() -> epoch("demo") == 2);
        } finally {
            a.restart();
        }
        DemoCommand.Summary summary = run.get(120, TimeUnit.SECONDS);

        String printed = bytes.toString(StandardCharsets.UTF_8);
        assertThat(summary.failovers()).as(printed).isEqualTo(1);
        assertThat(summary.lost()).as(printed).isZero();
        assertThat(summary.rejoined()).as(printed).isTrue();
        assertThat(summary.verifyIdentical()).as(printed).isTrue();
        assertThat(summary.exitCode()).isZero();
        assertThat(Files.readString(report)).contains("failover (automatic) to mirror");
    }

    private static long epoch(String partnership) throws Exception {
        PartnershipRecord r = witness.store().read(partnership).record();
        return r.epoch();
    }
}
