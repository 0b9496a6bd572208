package dev.lockstep.embedded;

import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A PostgreSQL server run from zonky's embedded binaries on a data directory of its own, so that
 * it can be killed and started again on the same data and port. zonky is used for each start
 * (a new {@link EmbeddedPostgres} on the kept data directory); killing, freezing and the check
 * that nothing of the cluster survived are done here, on the processes themselves.
 *
 * <p>zonky starts every server with {@code -F} (fsync off). That does not weaken {@link #kill()}:
 * it kills processes, and what they wrote stays in the operating system's page cache.
 */
public final class EmbeddedServer implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(EmbeddedServer.class);
    /** zonky's initdb creates this superuser with trust authentication: any password works. */
    private static final String SUPERUSER = "postgres";
    /** Bounds a start, crash recovery included. */
    private static final Duration STARTUP_WAIT = Duration.ofSeconds(60);
    /** A random port can be taken between the probe and the server's bind; try again then. */
    private static final int START_ATTEMPTS = 3;
    /** zonky locks this file in the data directory for the life of its handle. */
    private static final String ZONKY_LOCK_FILE = "epg-lock";
    private static final Pattern SETTING_NAME = Pattern.compile("[A-Za-z_][A-Za-z0-9_.]*");
    /** Server ports come from below the kernel's ephemeral range, so that no outgoing connection
     *  takes a killed server's port before restart() binds it again. */
    private static final int LOWEST_PORT = 15_000;
    /** Settings that only make sense for a server on this machine; the caller's settings win. */
    private static final Map<String, String> LOCAL_SETTINGS = Map.of(
            "listen_addresses", "127.0.0.1",
            // No Unix socket: nothing here uses it, and its lock file would name a killed pid.
            "unix_socket_directories", "",
            // Dynamic shared memory as files in the data directory, which close() deletes; in
            // /dev/shm the segments of a killed server would outlive it.
            "dynamic_shared_memory_type", "mmap");

    private final String name;
    private final Path nodeDir;
    private final Path dataDir;
    private final Path logFile;
    private final Map<String, String> settings;
    private final ClusterProcesses processes;
    private final Thread shutdownHook;
    private int port;
    /** Ports come from slice {@code portSlice} of {@code portSlices} of the range; see {@link #start(String, Map, int, int)}. */
    private final int portSlice;
    private final int portSlices;
    /** zonky's handle of the running server; null after kill (the handle is abandoned). */
    private EmbeddedPostgres server;
    private boolean closed;

    private EmbeddedServer(String name, Map<String, String> settings, int portSlice, int portSlices) {
        this.portSlice = portSlice;
        this.portSlices = portSlices;
        settings.keySet().forEach(k -> {
            if (!SETTING_NAME.matcher(k).matches()) {
                throw new IllegalArgumentException("not a setting name: " + k);
            }
        });
        this.name = name;
        Map<String, String> merged = new HashMap<>(LOCAL_SETTINGS);
        merged.putAll(settings);
        this.settings = Map.copyOf(merged);
        this.nodeDir = NodeDirectories.create(name);
        this.dataDir = nodeDir.resolve("data");
        this.logFile = nodeDir.resolve("server.log");
        this.processes = new ClusterProcesses(dataDir);
        // If the test forgets close(), the JVM's exit still takes the server and its data away.
        this.shutdownHook = new Thread(this::discard, "pg-node-" + name + "-shutdown");
        Runtime.getRuntime().addShutdownHook(shutdownHook);
    }

    /**
     * Initialises a data directory and starts a server on a free port of 127.0.0.1. Directories
     * that a dead JVM left behind, with their servers, are removed first.
     *
     * @param name     node name, used for the directory and in messages
     * @param settings postgresql.conf settings; they win over the local defaults
     * @return the running server
     * @throws IllegalStateException when it does not start (the end of its log is in the message)
     */
    public static EmbeddedServer start(String name, Map<String, String> settings) {
        return start(name, settings, 1, 1);
    }

    /**
     * Like {@link #start(String, Map)}, taking ports only from one of several equal slices of
     * the port range, so that JVMs running at once (test forks) never start a server on the port
     * of another's killed server before it is restarted.
     *
     * @param slice  which slice, from 1
     * @param slices how many slices
     */
    public static EmbeddedServer start(String name, Map<String, String> settings, int slice, int slices) {
        if (slices < 1 || slice < 1 || slice > slices) {
            throw new IllegalArgumentException("port slice " + slice + " of " + slices + ": needs 1 <= slice <= slices");
        }
        NodeDirectories.sweepStale();
        EmbeddedServer backend = new EmbeddedServer(name, settings, slice, slices);
        try {
            DataDirectoryTemplate.forCurrentBinaries()
                    .ifPresent(template -> template.copyInto(backend.dataDir, target -> initialiseStopped(target, slice, slices)));
            backend.startOnFreePort();
            return backend;
        } catch (RuntimeException e) {
            backend.close();
            throw e;
        }
    }

    /** Writes a freshly initialised, cleanly stopped data directory at {@code target}. */
    private static void initialiseStopped(Path target, int slice, int slices) {
        try (EmbeddedServer maker = new EmbeddedServer("template", Map.of(), slice, slices)) {
            maker.startOnFreePort();
            maker.stop();
            Files.deleteIfExists(maker.dataDir.resolve(ZONKY_LOCK_FILE));
            Files.move(maker.dataDir, target);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Host the server listens on. */
    public String host() {
        return "127.0.0.1";
    }

    /** Port the server listens on; the same after {@link #restart()}. */
    public int port() {
        return port;
    }

    /** Superuser name. */
    public String user() {
        return SUPERUSER;
    }

    /** Superuser password (trust authentication: any works). */
    public String password() {
        return SUPERUSER;
    }

    /** The server's log (initdb and server output), for diagnosing a test. */
    public Path logFile() {
        return logFile;
    }

    /** The postmaster and all its descendants right now (empty when down); for tests. */
    public List<Long> processIds() {
        return processes.all();
    }

    /** Hard-kills the server, every process of it at once (SIGKILL); returns when all are gone. */
    public void kill() {
        List<Long> killed = processes.killAll();
        // zonky's handle is abandoned, not closed: closing would run pg_ctl stop on a dead server.
        server = null;
        log.debug("node {}: killed pids {}", name, killed);
    }

    /** Suspends every process of the server (SIGSTOP). */
    public void freeze() {
        processes.stopAll();
    }

    /** Resumes what {@link #freeze()} suspended (SIGCONT). */
    public void thaw() {
        processes.continueAll();
    }

    /** Starts the server again on its data and port after kill or stop; returns when it accepts connections. */
    public void restart() {
        if (isRunning()) {
            throw new IllegalStateException("node " + name + " is running; kill() or stop() it first");
        }
        launch();
    }

    /** Clean shutdown (fast mode). */
    public void stop() {
        EmbeddedPostgres handle = server;
        server = null;
        if (!isRunning()) {
            return;
        }
        List<Long> pids = processes.all();
        if (handle != null) {
            try {
                handle.close(); // pg_ctl stop -m fast -w; zonky logs its own failure
            } catch (IOException e) {
                log.warn("node {}: clean shutdown failed: {}", name, e.toString());
            }
        }
        if (isRunning()) {
            log.warn("node {}: still running after pg_ctl stop; killing it", name);
            processes.killAll();
        }
        processes.awaitGone(pids);
    }

    /** Whether the server's processes exist (a frozen server counts as running). */
    public boolean isRunning() {
        return processes.postmasterPid().isPresent();
    }

    /** Stops the server and deletes its data. Idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            Runtime.getRuntime().removeShutdownHook(shutdownHook);
        } catch (IllegalStateException e) {
            // the JVM is exiting: the hook runs anyway
        }
        try {
            if (isRunning()) {
                thaw(); // a frozen server cannot shut down
                stop();
            }
        } finally {
            discard();
        }
    }

    /** The JDBC URL of a database on this server. */
    public String jdbcUrl(String database) {
        return "jdbc:postgresql://" + host() + ":" + port + "/" + database;
    }

    /** Whether a process is alive; for checks that nothing of a killed server survived. */
    public static boolean isProcessAlive(long pid) {
        return ClusterProcesses.isAlive(pid);
    }

    /** Kills the servers of node directories whose JVM is gone and deletes those directories. */
    public static void sweepStaleDirectories() {
        NodeDirectories.sweepStale();
    }

    /** Kills whatever is left, frees its shared memory and deletes the node directory. */
    private void discard() {
        processes.killAll();
        processes.releaseSharedMemory();
        NodeDirectories.deleteTree(nodeDir);
    }

    private void startOnFreePort() {
        for (int attempt = 1; ; attempt++) {
            port = freePort(portSlice, portSlices);
            try {
                launch();
                return;
            } catch (RuntimeException e) {
                if (attempt >= START_ATTEMPTS || !logTail().contains("Address already in use")) {
                    throw e;
                }
                log.info("node {}: port {} was taken meanwhile; trying another", name, port);
            }
        }
    }

    /** Starts a server on the data directory (initdb when it is empty) and the current port. */
    private void launch() {
        processes.removeStalePidFile();
        try {
            // The abandoned handle of a killed server still holds zonky's lock on this file, and a
            // JVM cannot lock a file twice. A new file (new inode) is lockable again.
            Files.deleteIfExists(dataDir.resolve(ZONKY_LOCK_FILE));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        ProcessBuilder.Redirect toLog = ProcessBuilder.Redirect.appendTo(logFile.toFile());
        EmbeddedPostgres.Builder builder = EmbeddedPostgres.builder()
                .setDataDirectory(dataDir)
                .setCleanDataDirectory(false) // keep the data for restart(); close() deletes it
                .setPort(port)
                .setRegisterShutdownHook(false) // ours covers every start, zonky's would pile up
                .setPGStartupWait(STARTUP_WAIT)
                .setOutputRedirector(toLog)
                .setErrorRedirector(toLog);
        // zonky joins the settings into one "pg_ctl -o" string that a shell splits: quote values.
        settings.forEach((k, v) -> builder.setServerConfig(k, shellQuote(v)));
        try {
            server = builder.start();
        } catch (IOException | RuntimeException e) {
            processes.killAll(); // a server that came up too late, or half-way
            throw new IllegalStateException("node " + name + ": server did not start on port " + port
                    + "; end of " + logFile + ":\n" + logTail(), e);
        }
    }

    private String logTail() {
        try {
            List<String> lines = Files.readAllLines(logFile, StandardCharsets.UTF_8);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - 30), lines.size()));
        } catch (IOException e) {
            return "(no log: " + e + ")";
        }
    }

    private static String shellQuote(String value) {
        return "'" + value.replace("'", "'\"'\"'") + "'";
    }

    /** A port below the ephemeral range that can be bound on 127.0.0.1 right now. */
    private static int freePort(int slice, int slices) {
        int span = ephemeralRangeStart() - LOWEST_PORT;
        int lowest = LOWEST_PORT + (int) ((long) span * (slice - 1) / slices);
        int highest = LOWEST_PORT + (int) ((long) span * slice / slices) - 1;
        for (int i = 0; i < 100 && highest - lowest > 1000; i++) {
            int candidate = ThreadLocalRandom.current().nextInt(lowest, highest + 1);
            if (canBind(candidate)) {
                return candidate;
            }
        }
        try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return socket.getLocalPort(); // unusual port range: settle for an ephemeral port
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static boolean canBind(int port) {
        try (ServerSocket socket = new ServerSocket()) {
            socket.setReuseAddress(false);
            socket.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 1);
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    private static int ephemeralRangeStart() {
        try {
            String range = ClusterProcesses.readProcFile(Path.of("/proc/sys/net/ipv4/ip_local_port_range")).trim();
            return Integer.parseInt(range.split("\\s+")[0]);
        } catch (IOException | RuntimeException e) {
            return 32_768; // Linux default
        }
    }
}
