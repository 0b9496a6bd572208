package dev.lockstep.testing;

import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * How a {@link PgNode} runs its server: an embedded server process ({@link EmbeddedBackend},
 * the default) or a Docker container ({@link ContainerBackend}, when a Docker engine is
 * present). The system property {@code lockstep.test.backend=embedded|docker} forces one.
 * Implementations need not be thread-safe: {@link PgNode} serialises the calls.
 */
interface PgServerBackend extends AutoCloseable {

    /** System property that forces a backend: {@code embedded} or {@code docker}. */
    String BACKEND_PROPERTY = "lockstep.test.backend";

    /** Host the server listens on. */
    String host();

    /** Port the server listens on now; a container may come back on another one after restart. */
    int port();

    /** Superuser name. */
    String user();

    /** Superuser password. */
    String password();

    /** Hard-kills the server, every process of it at once; returns when all are gone. */
    void kill();

    /** Suspends every process of the server. */
    void freeze();

    /** Resumes what {@link #freeze()} suspended. */
    void thaw();

    /** Starts the server again on its data after kill or stop; returns when it accepts connections. */
    void restart();

    /** Clean shutdown (fast mode: sessions are disconnected, then a shutdown checkpoint). */
    void stop();

    /** Whether the server's processes exist (a frozen server counts as running). */
    boolean isRunning();

    /** Stops the server and removes its data. Idempotent. */
    @Override
    void close();

    /** Starts a server with the given postgresql.conf settings on the chosen backend. */
    static PgServerBackend start(String name, Map<String, String> settings) {
        String forced = System.getProperty(BACKEND_PROPERTY, "").trim();
        boolean docker;
        switch (forced) {
            case "embedded":
                docker = false;
                break;
            case "docker":
                if (!ContainerBackend.engineAvailable()) {
                    throw new IllegalStateException(BACKEND_PROPERTY + "=docker but no Docker engine is available");
                }
                docker = true;
                break;
            case "":
                docker = ContainerBackend.engineAvailable();
                break;
            default:
                throw new IllegalArgumentException(BACKEND_PROPERTY + " must be embedded or docker, not " + forced);
        }
        Logger log = LoggerFactory.getLogger(PgServerBackend.class);
        log.debug("node {}: starting on the {} backend", name, docker ? "docker" : "embedded");
        return docker ? ContainerBackend.start(name, settings) : EmbeddedBackend.start(name, settings);
    }
}
