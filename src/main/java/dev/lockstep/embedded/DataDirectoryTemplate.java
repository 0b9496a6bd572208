package dev.lockstep.embedded;

import java.io.IOException;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.function.Consumer;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A freshly initialised, cleanly stopped data directory kept on disk per set of PostgreSQL
 * binaries, which new embedded servers start from: initdb takes about two seconds on a small
 * machine, copying its result a tenth of that. Tests start dozens of servers.
 *
 * <p>The template lives in {@code <tmp>/lockstep-pg-templates/<key>/}, where the key is a hash of
 * where the binaries come from (their jar, which names their version), so other binaries never
 * start on it. It is published by an atomic rename, so a reader sees a complete template or none;
 * two JVMs that make one at once both succeed and one of the two copies is kept. Clusters copied
 * from one template share a system identifier, which nothing in Lockstep reads.
 */
final class DataDirectoryTemplate {

    private static final Logger log = LoggerFactory.getLogger(DataDirectoryTemplate.class);
    /** zonky's resource names for the binaries of this platform, the most specific first. */
    private static final List<String> BINARY_RESOURCES = List.of(
            "postgres-linux-x86_64.txz", "postgres-linux-arm_64.txz");

    private final Path location;

    private DataDirectoryTemplate(Path location) {
        this.location = location;
    }

    /** The template for the binaries on the class path; empty when they cannot be identified. */
    static Optional<DataDirectoryTemplate> forCurrentBinaries() {
        ClassLoader loader = DataDirectoryTemplate.class.getClassLoader();
        return BINARY_RESOURCES.stream()
                .map(loader::getResource)
                .filter(url -> url != null)
                .findFirst()
                .map(url -> new DataDirectoryTemplate(root().resolve(keyOf(url))));
    }

    /**
     * Fills an empty or missing data directory from the template, making the template first with
     * {@code maker} (which must write an initialised, stopped data directory at the path it is
     * given) when there is none yet.
     *
     * @return whether the data directory was filled; when not, it is left empty for initdb
     */
    boolean copyInto(Path dataDir, Consumer<Path> maker) {
        try {
            if (!Files.isDirectory(location)) {
                make(maker);
            }
            copyTree(location, dataDir);
            return true;
        } catch (IOException | RuntimeException e) {
            log.warn("cannot start from the data directory template {}: {}; running initdb", location, e.toString());
            NodeDirectories.deleteTree(dataDir);
            return false;
        }
    }

    private void make(Consumer<Path> maker) throws IOException {
        Files.createDirectories(root());
        Path staging = Files.createTempDirectory(root(), ".staging-");
        try {
            Path data = staging.resolve("data");
            maker.accept(data);
            try {
                Files.move(data, location, StandardCopyOption.ATOMIC_MOVE);
                log.info("made the data directory template {}", location);
            } catch (FileAlreadyExistsException | DirectoryNotEmptyException e) {
                // another JVM published one first: it is as good as ours
            } catch (FileSystemException e) {
                if (!Files.isDirectory(location)) {
                    throw e;
                }
                // likewise (Linux reports a non-empty target of a rename as a plain FileSystemException)
            }
        } finally {
            NodeDirectories.deleteTree(staging);
        }
    }

    private static void copyTree(Path from, Path to) throws IOException {
        List<Path> sources;
        try (Stream<Path> walk = Files.walk(from)) {
            sources = walk.collect(Collectors.toList()); // parents come before their children
        }
        for (Path source : sources) {
            Path target = to.resolve(from.relativize(source).toString());
            if (Files.isDirectory(source) && Files.isDirectory(target)) {
                continue; // the (empty) data directory itself may exist already
            }
            Files.copy(source, target, StandardCopyOption.COPY_ATTRIBUTES);
        }
    }

    private static Path root() {
        return Path.of(System.getProperty("java.io.tmpdir"), "lockstep-pg-templates");
    }

    private static String keyOf(URL binaries) {
        try {
            byte[] digest = MessageDigest.getInstance("SHA-256")
                    .digest(binaries.toString().getBytes(StandardCharsets.UTF_8));
            return HexFormat.of().formatHex(digest, 0, 12);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e); // every JDK has SHA-256
        }
    }
}
