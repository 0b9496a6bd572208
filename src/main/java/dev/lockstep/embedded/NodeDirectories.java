package dev.lockstep.embedded;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.FileVisitResult;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Directories of embedded nodes: {@code <tmp>/lockstep-pg/<name>-<random>/} holding
 * {@code data/}, {@code server.log} and an {@code owner} file naming the JVM that owns it.
 * A JVM that dies without closing its nodes (a killed surefire fork) leaves servers running;
 * {@link #sweepStale()} finds them through the owner file and removes them.
 */
final class NodeDirectories {

    private static final Logger log = LoggerFactory.getLogger(NodeDirectories.class);
    private static final String OWNER_FILE = "owner";
    /** A directory without owner file may be one being created right now; leave it for a while. */
    private static final Duration UNOWNED_GRACE = Duration.ofMinutes(10);
    private static final long START_TIME_SLACK_MS = 2_000;

    private NodeDirectories() {
    }

    static Path root() {
        return Path.of(System.getProperty("java.io.tmpdir"), "lockstep-pg");
    }

    /** Creates a fresh node directory owned by this JVM. */
    static Path create(String nodeName) {
        try {
            Files.createDirectories(root());
            Path dir = Files.createTempDirectory(root(), nodeName.replaceAll("[^A-Za-z0-9_.-]", "_") + "-");
            ProcessHandle self = ProcessHandle.current();
            long started = self.info().startInstant().map(Instant::toEpochMilli).orElse(0L);
            Files.writeString(dir.resolve(OWNER_FILE), self.pid() + " " + started);
            return dir;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Kills the servers of node directories whose JVM is gone and deletes those directories. */
    static void sweepStale() {
        List<Path> dirs;
        try (Stream<Path> list = Files.list(root())) {
            dirs = list.filter(Files::isDirectory).collect(Collectors.toList());
        } catch (NoSuchFileException e) {
            return;
        } catch (IOException e) {
            log.debug("cannot list {}", root(), e);
            return;
        }
        for (Path dir : dirs) {
            if (isStale(dir)) {
                log.info("removing a node directory left by a JVM that is gone: {}", dir);
                ClusterProcesses processes = new ClusterProcesses(dir.resolve("data"));
                processes.killAll();
                processes.releaseSharedMemory();
                deleteTree(dir);
            }
        }
    }

    /** Deletes a directory tree; files that vanish meanwhile (another sweeper) are fine. */
    static void deleteTree(Path dir) {
        try {
            Files.walkFileTree(dir, new SimpleFileVisitor<>() {
                @Override
                public FileVisitResult visitFile(Path file, BasicFileAttributes attrs)
                        throws IOException {
                    Files.deleteIfExists(file);
                    return FileVisitResult.CONTINUE;
                }

                @Override
                public FileVisitResult visitFileFailed(Path file, IOException e) throws IOException {
                    if (e instanceof NoSuchFileException) {
                        return FileVisitResult.CONTINUE;
                    }
                    throw e;
                }

                @Override
                public FileVisitResult postVisitDirectory(Path d, IOException e) throws IOException {
                    if (e != null && !(e instanceof NoSuchFileException)) {
                        throw e;
                    }
                    Files.deleteIfExists(d);
                    return FileVisitResult.CONTINUE;
                }
            });
        } catch (NoSuchFileException e) {
            // already gone
        } catch (IOException e) {
            log.warn("could not delete {}: {}", dir, e.toString());
        }
    }

    private static boolean isStale(Path dir) {
        try {
            Path owner = dir.resolve(OWNER_FILE);
            if (!Files.exists(owner)) {
                Instant modified = Files.getLastModifiedTime(dir).toInstant();
                return modified.isBefore(Instant.now().minus(UNOWNED_GRACE));
            }
            String[] pidAndStart = Files.readString(owner).trim().split(" ");
            long pid = Long.parseLong(pidAndStart[0]);
            long started = Long.parseLong(pidAndStart[1]);
            Optional<ProcessHandle> process = ProcessHandle.of(pid);
            if (process.isEmpty() || !process.get().isAlive()) {
                return true;
            }
            // The pid may have been reused by another process since: compare start times, with
            // slack, since each JVM derives them from boot time and clock ticks on its own.
            Optional<Instant> actualStart = process.get().info().startInstant();
            return started != 0 && actualStart.isPresent()
                    && Math.abs(actualStart.get().toEpochMilli() - started) > START_TIME_SLACK_MS;
        } catch (IOException | RuntimeException e) {
            log.debug("cannot tell whether {} is stale", dir, e);
            return false;
        }
    }
}
