package dev.lockstep.cli;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

import static org.assertj.core.api.Assertions.assertThat;

/** {@code bench} and {@code demo} through the command line's entry point, on real embedded servers, and their bad input. */
class MainTest {

    private record Run(int code, String out, String err) {
    }

    private static Run lockstep(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = Main.run(args, new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Run(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    @Test
    void benchRunsTheTpcbTransactionThroughALockstepPartnership() {
        Run bench = lockstep("bench", "--clients", "2", "--seconds", "2", "--warmup", "0", "--scale", "1", "--target", "lockstep");
        assertThat(bench.code()).as(bench.out() + bench.err()).isZero();
        assertThat(bench.out()).containsPattern("bench target=lockstep clients=2 seconds=2 tx=[1-9][0-9]* tps=")
                .contains("verify identical=true");
    }

    @Test
    void benchCeilingRunsEachTransactionOnTwoNodesWithTwoPhaseCommit() {
        Run bench = lockstep("bench", "--clients", "2", "--seconds", "2", "--warmup", "0", "--scale", "1", "--target", "ceiling");
        assertThat(bench.code()).as(bench.out() + bench.err()).isZero();
        assertThat(bench.out()).containsPattern("bench target=direct clients=2 seconds=2 tx=[1-9][0-9]* tps=")
                .containsPattern("bench target=ceiling clients=2 seconds=2 tx=[1-9][0-9]* tps=")
                .containsPattern("bench ratio clients=2 ceiling/direct=[0-9.]+");
    }

    @Test
    void benchFloorStoresEachTransactionsCapturedRowsOnBothNodes() {
        Run bench = lockstep("bench", "--clients", "2", "--seconds", "2", "--warmup", "0", "--scale", "1", "--target", "floor",
                "--capture", "row");
        assertThat(bench.code()).as(bench.out() + bench.err()).isZero();
        java.util.regex.Matcher tx = java.util.regex.Pattern.compile("bench target=floor clients=2 seconds=2 tx=([1-9][0-9]*) tps=")
                .matcher(bench.out());
        assertThat(tx.find()).as(bench.out()).isTrue();
        // Without warm-up every committed transaction left one journal record on each node.
        assertThat(bench.out()).contains("bench: floor capture triggers (capture=row) on 4 tables")
                .contains("bench floor journal records so far (warm-ups and earlier runs included) first=" + tx.group(1) + " second=" + tx.group(1))
                .containsPattern("bench ratio clients=2 floor/direct=[0-9.]+");
    }

    @Test
    void badCommandLinesExitWithTheUsageCodeAndSayWhy() {
        Run clients = lockstep("bench", "--clients", "0");
        assertThat(clients.code()).isEqualTo(Main.USAGE);
        assertThat(clients.err()).contains("clients");

        Run halfExternal = lockstep("demo", "--principal", "jdbc:postgresql://127.0.0.1:1/x");
        assertThat(halfExternal.code()).isEqualTo(Main.USAGE);
        assertThat(halfExternal.err()).contains("give --principal, --mirror and --witness together");

        Run unknown = lockstep("promote");
        assertThat(unknown.code()).isEqualTo(Main.USAGE);
        assertThat(unknown.err()).contains("unknown command 'promote'", "seed", "verify");

        Run help = lockstep("help");
        assertThat(help.code()).isZero();
        assertThat(help.out()).contains("force-service", "--allow-data-loss", "demo", "bench");
    }
}
