package dev.lockstep.cli;

import java.io.PrintStream;
import java.util.Arrays;
import java.util.List;

/**
 * The Lockstep command line: {@code demo} (the default), {@code bench} and {@code bench-capture}.
 * Exit codes: 0 success, 1 the run found a problem (nodes not identical, failed transactions),
 * 2 a usage error, 3 an error that stopped the run.
 */
public final class Main {

    /** Exit code of a command line that cannot be run. */
    public static final int USAGE = 2;
    /** Exit code of a run that stopped on an error. */
    public static final int ERROR = 3;

    private static final String USAGE_TEXT = String.join(System.lineSeparator(),
            "usage: lockstep <command> [--option value ...]",
            "  demo           [--clients 8] [--phase-seconds 4] [--report lockstep-demo-report.html] [--seed 42]",
            "                 [--principal URL --mirror URL --witness URL --user u --password p --seconds 60]",
            "  bench          [--clients 1,8,32] [--seconds 10] [--warmup 2] [--scale 10] [--target direct|lockstep|both|ceiling|floor]",
            "                 [--capture statement|row] [--url jdbc:... --user u --password p]",
            "  bench-capture  [--single-row-tx 2000] [--bulk-tx 20] [--bulk-rows 5000] [--clients 4] [--limit-seconds 60]",
            "  install        --config lockstep.properties [--json]   node schemas on both partners, witness schema, partnership",
            "  attach         --config F --table name [--capture statement|row] [--json]",
            "  status         --config F [--json]   per node: role, health; state, epoch, send queue",
            "  failover       --config F --to mirror|primary [--json]   planned failover, no loss",
            "  force-service  --config F --allow-data-loss [--json]",
            "  suspend        --config F [--json]",
            "  resume         --config F [--json]",
            "  verify         --config F [--repair] [--json]   names differing keys, sequences, schema; exit code 1 when they differ",
            "  seed           --config F [--wait-seconds 600] [--json]   re-seed the mirror online from the principal",
            "  (every --config command also takes --partnership name to override the file's)",
            "  help");

    private Main() {
    }

    /** Runs the command line and exits with its exit code. */
    public static void main(String[] args) {
        int code = run(args, System.out, System.err);
        System.out.flush();
        System.exit(code);
    }

    /**
     * Runs a command without exiting the JVM.
     *
     * @param args the command line
     * @param out  where results go
     * @param err  where usage and error messages go
     * @return the exit code
     */
    public static int run(String[] args, PrintStream out, PrintStream err) {
        List<String> argv = Arrays.asList(args);
        String command = argv.isEmpty() ? "demo" : argv.get(0);
        List<String> rest = argv.isEmpty() ? List.of() : argv.subList(1, argv.size());
        try {
            switch (command) {
                case "demo":
                    return new DemoCommand(DemoCommand.Options.from(Args.parse(command, rest, DemoCommand.OPTIONS)), out)
                            .run().exitCode();
                case "bench":
                    return new BenchCommand(BenchCommand.Options.from(Args.parse(command, rest, BenchCommand.OPTIONS)), out)
                            .run();
                case "bench-capture":
                    return new CaptureBenchCommand(
                            CaptureBenchCommand.Options.from(Args.parse(command, rest, CaptureBenchCommand.OPTIONS)), out).run();
                case "install":
                case "attach":
                case "status":
                case "failover":
                case "force-service":
                case "suspend":
                case "resume":
                case "verify":
                case "seed":
                    return new AdminCommand(command, Args.parse(command, rest, AdminCommand.options(command)), out).run();
                case "help":
                case "--help":
                case "-h":
                    out.println(USAGE_TEXT);
                    return 0;
                default:
                    throw new Args.UsageException("unknown command '" + command + "'; commands: demo, install, attach, status,"
                            + " failover, force-service, suspend, resume, verify, seed, bench, bench-capture, help");
            }
        } catch (Args.UsageException e) {
            err.println("error: " + e.getMessage());
            err.println(USAGE_TEXT);
            return USAGE;
        } catch (java.sql.SQLException e) {
            err.println("error: " + command + " failed: " + e.getMessage() + " (SQLSTATE " + e.getSQLState() + ")");
            return ERROR;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            err.println("error: " + command + " was interrupted");
            return ERROR;
        } catch (Exception e) {
            err.println("error: " + command + " failed: " + e);
            e.printStackTrace(err);
            return ERROR;
        }
    }
}
