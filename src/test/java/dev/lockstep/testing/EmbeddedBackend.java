package dev.lockstep.testing;

import dev.lockstep.embedded.EmbeddedServer;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/** The embedded backend of {@link PgNode}: an {@link EmbeddedServer}, which the demo uses too. */
final class EmbeddedBackend implements PgServerBackend {

    private final EmbeddedServer server;

    private EmbeddedBackend(EmbeddedServer server) {
        this.server = server;
    }

    /**
     * Starts a server; under surefire's forks (the build sets {@code lockstep.test.fork} and
     * {@code lockstep.test.forks}) each fork takes ports from a slice of its own.
     */
    static EmbeddedBackend start(String name, Map<String, String> settings) {
        int forks = Integer.getInteger("lockstep.test.forks", 1);
        int fork = Integer.getInteger("lockstep.test.fork", 1);
        return new EmbeddedBackend(EmbeddedServer.start(name, settings, 1 + (fork - 1) % forks, forks));
    }

    /** The server's log, for diagnosing a test. */
    Path logFile() {
        return server.logFile();
    }

    /** The postmaster and all its descendants right now (empty when down). */
    List<Long> processIds() {
        return server.processIds();
    }

    @Override
    public String host() {
        return server.host();
    }

    @Override
    public int port() {
        return server.port();
    }

    @Override
    public String user() {
        return server.user();
    }

    @Override
    public String password() {
        return server.password();
    }

    @Override
    public void kill() {
        server.kill();
    }

    @Override
    public void freeze() {
        server.freeze();
    }

    @Override
    public void thaw() {
        server.thaw();
    }

    @Override
    public void restart() {
        server.restart();
    }

    @Override
    public void stop() {
        server.stop();
    }

    @Override
    public boolean isRunning() {
        return server.isRunning();
    }

    @Override
    public void close() {
        server.close();
    }
}
