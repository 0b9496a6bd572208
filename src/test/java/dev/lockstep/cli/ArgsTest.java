package dev.lockstep.cli;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Set;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class ArgsTest {

    private static final Set<String> KNOWN = Set.of("clients", "seconds", "target");

    @Test
    void readsSpaceAndEqualsForms() {
        Args args = Args.parse("bench", List.of("--clients", "1,8,32", "--seconds=15"), KNOWN);

        assertThat(args.integers("clients", List.of(4), 1, 100)).containsExactly(1, 8, 32);
        assertThat(args.integer("seconds", 10, 1, 60)).isEqualTo(15);
        assertThat(args.has("target")).isFalse();
        assertThat(args.choice("target", "both", Set.of("direct", "lockstep", "both"))).isEqualTo("both");
    }

    @Test
    void unknownOptionIsNamed() {
        assertThatThrownBy(() -> Args.parse("bench", List.of("--clients", "8", "--sekonds", "3"), KNOWN))
                .isInstanceOf(Args.UsageException.class)
                .hasMessageContaining("unknown option '--sekonds'")
                .hasMessageContaining("bench")
                .hasMessageContaining("--seconds");
    }

    @Test
    void missingValueIsNamed() {
        assertThatThrownBy(() -> Args.parse("bench", List.of("--seconds"), KNOWN))
                .isInstanceOf(Args.UsageException.class)
                .hasMessageContaining("'--seconds' needs a value");
        assertThatThrownBy(() -> Args.parse("bench", List.of("--seconds", "--clients", "3"), KNOWN))
                .hasMessageContaining("'--seconds' needs a value");
    }

    @Test
    void repeatedOptionAndStrayArgumentAreRefused() {
        assertThatThrownBy(() -> Args.parse("bench", List.of("--seconds", "1", "--seconds", "2"), KNOWN))
                .hasMessageContaining("'--seconds' is given twice");
        assertThatThrownBy(() -> Args.parse("bench", List.of("fast"), KNOWN))
                .hasMessageContaining("unexpected argument 'fast'");
    }

    @Test
    void badValuesNameTheOptionAndTheValue() {
        Args args = Args.parse("bench", List.of("--clients", "1,x", "--seconds", "0", "--target", "mirror"), KNOWN);

        assertThatThrownBy(() -> args.integers("clients", List.of(), 1, 100))
                .hasMessageContaining("'--clients' needs a whole number, got 'x'");
        assertThatThrownBy(() -> args.integer("seconds", 10, 1, 60))
                .hasMessageContaining("'--seconds' must be between 1 and 60, got 0");
        assertThatThrownBy(() -> args.choice("target", "both", Set.of("direct", "lockstep", "both")))
                .hasMessageContaining("'--target' must be one of both|direct|lockstep, got 'mirror'");
    }

    @Test
    void mainReportsUsageErrorsWithExitCodeTwo() {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        ByteArrayOutputStream out = new ByteArrayOutputStream();

        int code = Main.run(new String[] {"demo", "--transactoins", "5"}, new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));

        assertThat(code).isEqualTo(Main.USAGE);
        assertThat(err.toString(StandardCharsets.UTF_8)).contains("demo: unknown option '--transactoins'");
        assertThat(out.toString(StandardCharsets.UTF_8)).isEmpty();
    }

    @Test
    void mainRefusesUnknownCommandAndBenchUrlWithLockstepTarget() {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream errStream = new PrintStream(err, true, StandardCharsets.UTF_8);
        PrintStream out = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);

        assertThat(Main.run(new String[] {"benchmark"}, out, errStream)).isEqualTo(Main.USAGE);
        assertThat(Main.run(new String[] {"bench", "--url", "jdbc:postgresql://x/y", "--target", "lockstep"}, out, errStream))
                .isEqualTo(Main.USAGE);

        assertThat(err.toString(StandardCharsets.UTF_8)).contains("unknown command 'benchmark'")
                .contains("--url runs only the direct target");
    }
}
