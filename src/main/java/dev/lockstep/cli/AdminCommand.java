package dev.lockstep.cli;

import dev.lockstep.LockstepConfig;
import dev.lockstep.LockstepDataSource;
import dev.lockstep.MirroringStatistics;
import dev.lockstep.NodeConfig;
import dev.lockstep.PartnershipStatus;
import dev.lockstep.RepairReport;
import dev.lockstep.VerifyReport;
import dev.lockstep.core.PartnerHealth;
import dev.lockstep.core.PartnershipRecord;

import java.io.IOException;
import java.io.PrintStream;
import java.io.Reader;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * The operator's commands on a partnership named by a properties file ({@code --config}, the
 * settings of {@link LockstepConfig#fromProperties}): {@code install}, {@code attach},
 * {@code status}, {@code failover}, {@code force-service}, {@code suspend}, {@code resume} and
 * {@code verify}. Each starts a short-lived coordinator, does its one thing and stops. Output is
 * human-readable lines, or one JSON object with {@code --json}.
 */
public final class AdminCommand {

    /** The commands this class runs. */
    public static final Set<String> COMMANDS = Set.of("install", "attach", "status", "failover", "force-service", "suspend",
            "resume", "verify", "seed");

    /** Options every admin command accepts; some take more (see {@link #options}). */
    private static final Set<String> COMMON = Set.of("config", "partnership", "json");
    private static final Duration FIRST_PROBES = Duration.ofSeconds(10);

    private final String command;
    private final Args args;
    private final PrintStream out;

    /**
     * @param command the command
     * @param args    its parsed options
     * @param out     where results go
     */
    public AdminCommand(String command, Args args, PrintStream out) {
        this.command = command;
        this.args = args;
        this.out = out;
    }

    /** The options a command accepts. */
    public static Set<String> options(String command) {
        Set<String> extra = switch (command) {
            case "attach" -> Set.of("table", "capture");
            case "failover" -> Set.of("to");
            case "force-service" -> Set.of("allow-data-loss");
            case "verify" -> Set.of("repair");
            case "seed" -> Set.of("wait-seconds");
            default -> Set.of();
        };
        return java.util.stream.Stream.concat(COMMON.stream(), extra.stream()).collect(Collectors.toUnmodifiableSet());
    }

    /**
     * Runs the command.
     *
     * @return 0 on success, 1 when verify found differences (left after {@code --repair})
     * @throws SQLException          when a node or the witness refused or failed (the message says which)
     * @throws Args.UsageException   on a bad command line or configuration
     */
    public int run() throws SQLException, InterruptedException {
        LockstepConfig config = config();
        boolean installing = command.equals("install");
        if (!installing) {
            requireKnownPartnership(config);
        }
        try (LockstepDataSource ds = LockstepDataSource.start(config)) {
            Map<String, Object> result = new LinkedHashMap<>();
            result.put("command", command);
            result.put("partnership", config.partnership());
            int code = execute(ds, config, result);
            print(result);
            return code;
        }
    }

    private int execute(LockstepDataSource ds, LockstepConfig config, Map<String, Object> result)
            throws SQLException, InterruptedException {
        switch (command) {
            case "install" -> result.put("installed", List.of(config.principal().name(), config.mirror().name(),
                    config.witness() != null ? config.witness().name() + " (witness)" : "no witness"));
            case "attach" -> {
                String table = required("table");
                ds.partnership().attach(table, "row".equals(args.choice("capture", "statement", Set.of("statement", "row")))
                        ? dev.lockstep.CaptureMode.ROW : dev.lockstep.CaptureMode.STATEMENT);
                result.put("attached", ds.partnership().attachedTables());
            }
            case "status" -> status(ds, config, result);
            case "failover" -> {
                String to = args.choice("to", null, Set.of("mirror", "primary"));
                if (to == null) {
                    throw new Args.UsageException("failover needs --to mirror (the current mirror becomes principal) or --to primary"
                            + " (back to the configured principal)");
                }
                String target = to.equals("primary") ? config.principal().name() : ds.partnership().status().mirror();
                record(result, ds.partnership().failover(target));
            }
            case "force-service" -> {
                if (!args.has("allow-data-loss")) {
                    throw new Args.UsageException("force-service may lose what the mirror lacks: give --allow-data-loss to confirm");
                }
                awaitFirstProbes(ds, config);
                record(result, ds.partnership().forceService(true));
            }
            case "suspend" -> record(result, ds.partnership().suspend());
            case "seed" -> {
                record(result, ds.partnership().reseedMirror());
                // The catch-up that seeds runs in this coordinator: it stays up until SYNCHRONIZED.
                int wait = args.integer("wait-seconds", 600, 1, 86_400);
                boolean done = awaitState(ds, config, wait);
                result.put("state", ds.partnership().status().state().name());
                result.put("seeded", ds.partnership().lastCatchUp().map(c -> c.seeded()).orElse(false));
                if (!done) {
                    result.put("note", "not SYNCHRONIZED within " + wait + " s; the partnership's coordinators finish the seeding");
                    return 1;
                }
            }
            case "resume" -> record(result, ds.partnership().resume());
            case "verify" -> {
                VerifyReport report = ds.partnership().verify();
                describe(report, result);
                if (!args.has("repair") || report.identical()) {
                    return report.identical() ? 0 : 1;
                }
                RepairReport repair = ds.partnership().repair();
                result.put("repaired_rows", repair.rowsRepaired());
                result.put("repaired", repair.tables().stream().map(t -> t.table() + (t.skipped() != null ? " skipped: " + t.skipped()
                        : " " + t.changed() + " changed, " + t.missing() + " missing, " + t.extra() + " extra")).toList());
                result.put("sequences_advanced", repair.sequences().stream().map(q -> q.sequence() + " " + q.from() + " -> " + q.to())
                        .toList());
                VerifyReport after = ds.partnership().verify();
                result.put("identical_after_repair", after.identical());
                return after.identical() ? 0 : 1;
            }
            default -> throw new Args.UsageException("unknown command '" + command + "'");
        }
        return 0;
    }

    private static void describe(VerifyReport report, Map<String, Object> result) {
        result.put("identical", report.identical());
        result.put("tables", report.tables().stream().map(t -> t.table() + (t.identical() ? " identical" : " DIFFERENT: "
                + t.principalRows() + " rows on the principal, " + t.mirrorRows() + " on the mirror")).toList());
        List<String> keys = new java.util.ArrayList<>();
        for (VerifyReport.TableChecksum t : report.tables()) {
            t.differences().forEach(d -> keys.add(t.table() + " " + d.key() + " " + d.kind()));
            if (t.differencesCapped()) {
                keys.add(t.table() + ": " + t.differenceCount() + " differing keys in all");
            }
        }
        result.put("differing_keys", keys);
        result.put("sequences_behind", report.sequences().stream().filter(s -> !s.mirrorNotBehind())
                .map(s -> s.sequence() + " principal " + s.principal() + " mirror " + s.mirror()).toList());
        result.put("schema_differences", report.schema().stream().map(d -> d.table() + " " + d.object() + ": principal "
                + d.principal() + ", mirror " + d.mirror()).toList());
    }

    private void status(LockstepDataSource ds, LockstepConfig config, Map<String, Object> result) throws InterruptedException {
        awaitFirstProbes(ds, config);
        PartnershipStatus s = ds.partnership().status();
        MirroringStatistics stats = ds.partnership().statistics();
        result.put("epoch", s.epoch());
        result.put("state", s.state().name());
        result.put("mode", s.mode().name());
        result.put("principal", node(s.principal(), "principal", s.principalHealth()));
        result.put("mirror", node(s.mirror(), "mirror", s.mirrorHealth()));
        result.put("witness", s.witnessHealth() == null ? "none" : s.witnessHealth().name());
        result.put("automatic_failover_armed", s.automaticFailoverArmed());
        result.put("send_queue_records", stats.sendQueueRecords());
        result.put("send_queue_bytes", stats.sendQueueBytes());
        result.put("oldest_unsent_seconds", stats.oldestUnsentAge().toMillis() / 1000.0);
    }

    private static Map<String, Object> node(String name, String role, PartnerHealth health) {
        Map<String, Object> n = new LinkedHashMap<>();
        n.put("name", name);
        n.put("role", role);
        n.put("health", health == null ? "UNKNOWN" : health.name());
        return n;
    }

    private static void record(Map<String, Object> result, PartnershipRecord r) {
        result.put("epoch", r.epoch());
        result.put("principal", r.principal());
        result.put("mirror", r.mirror());
        result.put("state", r.state().name());
    }

    /**
     * A node counts as SUSPECT until its first probe has answered or failed; the status waits for
     * every node to be UP or FAILED (at most a few seconds), then one more heartbeat, in which the
     * send queue is measured.
     */
    private static void awaitFirstProbes(LockstepDataSource ds, LockstepConfig config) throws InterruptedException {
        long deadline = System.nanoTime() + FIRST_PROBES.toNanos();
        while (System.nanoTime() - deadline < 0) {
            PartnershipStatus s = ds.partnership().status();
            if (settled(s.principalHealth()) && settled(s.mirrorHealth()) && (config.witness() == null || settled(s.witnessHealth()))) {
                break;
            }
            Thread.sleep(50);
        }
        Thread.sleep(config.heartbeatInterval().toMillis() + 200);
    }

    private static boolean awaitState(LockstepDataSource ds, LockstepConfig config, int seconds) throws InterruptedException {
        dev.lockstep.core.MirroringState target = config.mode() == dev.lockstep.core.OperatingMode.HIGH_PERFORMANCE
                ? dev.lockstep.core.MirroringState.SYNCHRONIZING : dev.lockstep.core.MirroringState.SYNCHRONIZED;
        long deadline = System.nanoTime() + seconds * 1_000_000_000L;
        while (System.nanoTime() - deadline < 0) {
            if (ds.partnership().status().state() == target && ds.partnership().lastCatchUp().isPresent()) {
                return true;
            }
            Thread.sleep(100);
        }
        return false;
    }

    private static boolean settled(PartnerHealth h) {
        return h == PartnerHealth.UP || h == PartnerHealth.FAILED;
    }

    private LockstepConfig config() {
        String file = required("config");
        Properties p = new Properties();
        try (Reader r = Files.newBufferedReader(Path.of(file))) {
            p.load(r);
        } catch (NoSuchFileException e) {
            throw new Args.UsageException("configuration file " + file + " does not exist");
        } catch (IOException e) {
            throw new Args.UsageException("configuration file " + file + " cannot be read: " + e.getMessage());
        }
        if (args.has("partnership")) {
            p.setProperty("partnership", args.string("partnership", null));
        }
        // Only install creates schemas; every other command expects them.
        p.setProperty("installSchema", Boolean.toString(command.equals("install")));
        try {
            return LockstepConfig.fromProperties(p);
        } catch (IllegalArgumentException e) {
            throw new Args.UsageException("configuration file " + file + ": " + e.getMessage());
        }
    }

    /** Starting a coordinator would register an unknown partnership at the witness: refuse instead. */
    private static void requireKnownPartnership(LockstepConfig config) throws SQLException {
        NodeConfig where = config.witness() != null ? config.witness() : config.principal();
        String sql = config.witness() != null
                ? "SELECT 1 FROM lockstep_witness.partnership WHERE name = ?"
                : "SELECT 1 FROM lockstep.node_state WHERE partnership = ?";
        Properties p = new Properties();
        p.setProperty("user", where.user());
        p.setProperty("password", where.password());
        p.setProperty("connectTimeout", Long.toString(Math.max(1, config.connectTimeout().toSeconds())));
        p.setProperty("socketTimeout", Long.toString(config.remoteCallTimeout().toSeconds() + 5));
        try (Connection c = DriverManager.getConnection(where.jdbcUrl(), p); PreparedStatement ps = c.prepareStatement(sql)) {
            ps.setString(1, config.partnership());
            try (ResultSet rs = ps.executeQuery()) {
                if (!rs.next()) {
                    throw new SQLException("lockstep: " + (config.witness() != null ? "witness " : "node ") + where.name()
                            + " knows no partnership '" + config.partnership() + "'; run 'lockstep install' first", "42704");
                }
            }
        } catch (SQLException e) {
            if ("42P01".equals(e.getSQLState()) || "3F000".equals(e.getSQLState())) {
                throw new SQLException("lockstep: " + where.name() + " at " + where.jdbcUrl() + " has no Lockstep schema; run"
                        + " 'lockstep install' first", "55000", e);
            }
            if (e.getSQLState() != null && e.getSQLState().startsWith("08")) {
                throw new SQLException("lockstep: cannot connect to " + where.name() + " at " + where.jdbcUrl() + ": "
                        + e.getMessage(), e.getSQLState(), e);
            }
            if ("28P01".equals(e.getSQLState()) || "28000".equals(e.getSQLState())) {
                throw new SQLException("lockstep: " + where.name() + " at " + where.jdbcUrl() + " refused user " + where.user()
                        + ": " + e.getMessage(), e.getSQLState(), e);
            }
            throw e;
        }
    }

    private String required(String option) {
        String v = args.string(option, null);
        if (v == null || v.isBlank()) {
            throw new Args.UsageException(command + " needs --" + option);
        }
        return v;
    }

    private void print(Map<String, Object> result) {
        if (args.has("json")) {
            out.println(Json.write(result));
            return;
        }
        result.forEach((k, v) -> out.println(k + ": " + human(v)));
    }

    private static String human(Object v) {
        if (v instanceof Map<?, ?> m) {
            return m.values().stream().map(String::valueOf).collect(Collectors.joining(" "));
        }
        if (v instanceof List<?> l) {
            return l.isEmpty() ? "none" : l.stream().map(String::valueOf).collect(Collectors.joining(", "));
        }
        return v instanceof Double d ? String.format(Locale.ROOT, "%.1f", d) : String.valueOf(v);
    }
}
