package dev.lockstep.embedded;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.TimeUnit;

/**
 * The operating-system processes of one local PostgreSQL cluster: its postmaster (found through
 * {@code <datadir>/postmaster.pid}) and every process below it, with the signals the fault
 * controls need. Linux only: liveness is read from {@code /proc}.
 */
final class ClusterProcesses {

    private static final Duration GONE_TIMEOUT = Duration.ofSeconds(15);

    private final Path dataDir;

    ClusterProcesses(Path dataDir) {
        this.dataDir = dataDir;
    }

    /**
     * The live postmaster's pid. Empty when there is no pid file, or when the pid in it is dead,
     * a zombie, or (pids are reused, and pid_max may be as low as 32768) a process that is not a
     * postmaster of this data directory.
     */
    OptionalLong postmasterPid() {
        List<String> lines;
        try {
            lines = Files.readAllLines(pidFile(), StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            return OptionalLong.empty();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        if (lines.isEmpty() || lines.get(0).isBlank()) {
            return OptionalLong.empty(); // the postmaster is writing it right now
        }
        long pid;
        try {
            pid = Long.parseLong(lines.get(0).trim());
        } catch (NumberFormatException e) {
            return OptionalLong.empty();
        }
        return isAlive(pid) && commandLine(pid).contains(dataDir.toString())
                ? OptionalLong.of(pid) : OptionalLong.empty();
    }

    /** The postmaster followed by all its descendants; empty when the cluster is not running. */
    List<Long> all() {
        List<Long> pids = new ArrayList<>();
        postmasterPid().ifPresent(pm -> {
            pids.add(pm);
            ProcessHandle.of(pm).ifPresent(h -> h.descendants().forEach(d -> pids.add(d.pid())));
        });
        return pids;
    }

    /** SIGSTOP the postmaster first, so that it forks nothing new, then every descendant. */
    void stopAll() {
        OptionalLong pm = postmasterPid();
        if (pm.isEmpty()) {
            return;
        }
        signal("STOP", List.of(pm.getAsLong()));
        signal("STOP", all());
    }

    /** SIGCONT every process of the cluster. */
    void continueAll() {
        signal("CONT", all());
    }

    /**
     * SIGKILL the postmaster and every descendant at once and return when none of them is left.
     * The postmaster is stopped first: a postmaster that saw its children die would start crash
     * recovery and fork new ones.
     *
     * @return the pids that were killed
     */
    List<Long> killAll() {
        OptionalLong pm = postmasterPid();
        if (pm.isEmpty()) {
            return List.of();
        }
        signal("STOP", List.of(pm.getAsLong()));
        List<Long> pids = all();
        signal("KILL", pids);
        awaitGone(pids);
        return pids;
    }

    /** Waits until none of these processes runs any more (zombies count as gone). */
    void awaitGone(List<Long> pids) {
        long deadline = System.nanoTime() + GONE_TIMEOUT.toNanos();
        for (long pid : pids) {
            while (isAlive(pid)) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("process " + pid + " of " + dataDir + " is still alive");
                }
                pause();
            }
        }
    }

    /**
     * Removes a postmaster.pid whose postmaster is gone. PostgreSQL itself ignores a stale pid
     * file only when its pid is free; here the dead postmaster may linger as a zombie (pid 1 of
     * this machine reaps lazily) or its pid may belong to another process already.
     */
    void removeStalePidFile() {
        if (postmasterPid().isEmpty()) {
            try {
                Files.deleteIfExists(pidFile());
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }

    /**
     * Removes the cluster's System V interlock segment when the cluster was killed and will not
     * be restarted (a restart removes it itself). Without this every killed-then-closed node
     * would leak one segment until the machine reboots.
     */
    void releaseSharedMemory() {
        if (postmasterPid().isPresent()) {
            return;
        }
        List<String> lines;
        try {
            lines = Files.readAllLines(pidFile(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            return; // no pid file: nothing was left behind
        }
        // Line 7 of postmaster.pid is "<shmem key> <shmem id>".
        String[] keyAndId = lines.size() >= 7 ? lines.get(6).trim().split("\\s+") : new String[0];
        if (keyAndId.length == 2 && !"0".equals(keyAndId[1])) {
            run(List.of("ipcrm", "-m", keyAndId[1]));
        }
    }

    /** Alive means: present in /proc and neither a zombie nor dead. */
    static boolean isAlive(long pid) {
        String stat;
        try {
            stat = readProcFile(Path.of("/proc", Long.toString(pid), "stat"));
        } catch (IOException e) {
            return false; // gone
        }
        // Format: "pid (comm) S ...": comm may contain spaces and ')' so find the last ')'.
        int close = stat.lastIndexOf(')');
        char state = close >= 0 && close + 2 < stat.length() ? stat.charAt(close + 2) : '?';
        return state != 'Z' && state != 'X' && state != 'x';
    }

    private static String commandLine(long pid) {
        try {
            return readProcFile(Path.of("/proc", Long.toString(pid), "cmdline")).replace('\0', ' ');
        } catch (IOException e) {
            return "";
        }
    }

    /**
     * Reads a file of /proc. Not with Files.readString/readAllBytes: they trust the size that
     * stat reports, and some /proc files report a wrong one (ip_local_port_range reads as "3").
     */
    static String readProcFile(Path file) throws IOException {
        try (InputStream in = Files.newInputStream(file)) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    private Path pidFile() {
        return dataDir.resolve("postmaster.pid");
    }

    /** One {@code kill -SIG pid...}; pids that exited meanwhile are not an error. */
    private static void signal(String signal, List<Long> pids) {
        if (pids.isEmpty()) {
            return;
        }
        List<String> command = new ArrayList<>(List.of("kill", "-" + signal));
        pids.forEach(p -> command.add(Long.toString(p)));
        run(command);
    }

    /** Runs a short command and waits for it; its exit status and output do not matter here. */
    private static void run(List<String> command) {
        try {
            Process process = new ProcessBuilder(command).redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                throw new IllegalStateException(command + " did not finish");
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while running " + command, e);
        }
    }

    private static void pause() {
        try {
            Thread.sleep(5);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
    }
}
