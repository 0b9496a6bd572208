package dev.lockstep.testing;

import com.github.dockerjava.api.DockerClient;
import com.github.dockerjava.api.model.ExposedPort;
import com.github.dockerjava.api.model.Ports;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.stream.Stream;
import org.testcontainers.DockerClientFactory;
import org.testcontainers.containers.PostgreSQLContainer;
import org.testcontainers.utility.DockerImageName;

/**
 * A PostgreSQL server in a Docker container ({@code postgres:18}): kill is {@code docker kill},
 * freeze/thaw are {@code docker pause/unpause}, restart starts the same container again (same
 * data) and the server usually comes back on another host port, which {@link PgNode} hands to
 * its proxy. Used only when a Docker engine is present.
 */
final class ContainerBackend implements PgServerBackend {

    private static final String IMAGE = "postgres:18";
    private static final int PG_PORT = 5432;
    private static final String SUPERUSER = "postgres";
    private static final Duration READY_TIMEOUT = Duration.ofSeconds(60);
    /** Settings for a server in a throw-away container; the caller's settings win. */
    private static final Map<String, String> CONTAINER_SETTINGS = Map.of("fsync", "off");

    private final PostgreSQLContainer<?> container;
    private final DockerClient docker;
    private int port;
    private boolean closed;

    private ContainerBackend(String name, Map<String, String> settings) {
        Map<String, String> merged = new HashMap<>(CONTAINER_SETTINGS);
        merged.putAll(settings);
        List<String> command = new ArrayList<>(List.of("postgres"));
        merged.forEach((k, v) -> command.addAll(List.of("-c", k + "=" + v)));
        this.container = new PostgreSQLContainer<>(DockerImageName.parse(IMAGE))
                .withUsername(SUPERUSER)
                .withPassword(SUPERUSER)
                .withDatabaseName("postgres")
                .withLabel("dev.lockstep.node", name);
        container.setCommand(command.toArray(new String[0]));
        container.start();
        this.docker = DockerClientFactory.instance().client();
        this.port = container.getMappedPort(PG_PORT);
    }

    static ContainerBackend start(String name, Map<String, String> settings) {
        return new ContainerBackend(name, settings);
    }

    /**
     * Whether a Docker engine answers. Testcontainers is asked only when a sign of an engine
     * exists, because without one its probing is slow and logs errors.
     */
    static boolean engineAvailable() {
        String home = System.getProperty("user.home", "");
        String runtimeDir = System.getenv().getOrDefault("XDG_RUNTIME_DIR", "/nonexistent");
        boolean hint = System.getenv("DOCKER_HOST") != null
                || Stream.of(Path.of(home, ".testcontainers.properties"),
                        Path.of("/var/run/docker.sock"),
                        Path.of(home, ".docker", "run", "docker.sock"),
                        Path.of(home, ".docker", "desktop", "docker.sock"),
                        Path.of(home, ".colima", "default", "docker.sock"),
                        Path.of(home, ".rd", "docker.sock"),
                        Path.of(runtimeDir, "docker.sock"))
                .anyMatch(Files::exists);
        return hint && DockerClientFactory.instance().isDockerAvailable();
    }

    @Override
    public String host() {
        return container.getHost();
    }

    @Override
    public int port() {
        return port;
    }

    @Override
    public String user() {
        return SUPERUSER;
    }

    @Override
    public String password() {
        return SUPERUSER;
    }

    @Override
    public void kill() {
        if (Boolean.TRUE.equals(docker.inspectContainerCmd(container.getContainerId()).exec().getState().getPaused())) {
            thaw(); // some engine versions refuse to kill a paused container
        }
        docker.killContainerCmd(container.getContainerId()).exec();
        awaitState(false);
    }

    @Override
    public void freeze() {
        docker.pauseContainerCmd(container.getContainerId()).exec();
    }

    @Override
    public void thaw() {
        docker.unpauseContainerCmd(container.getContainerId()).exec();
    }

    @Override
    public void restart() {
        if (isRunning()) {
            throw new IllegalStateException("container is running; kill() or stop() it first");
        }
        docker.startContainerCmd(container.getContainerId()).exec();
        port = currentHostPort();
        awaitAcceptingConnections();
    }

    @Override
    public void stop() {
        // The image's stop signal is SIGINT: a fast shutdown.
        docker.stopContainerCmd(container.getContainerId()).withTimeout(30).exec();
        awaitState(false);
    }

    @Override
    public boolean isRunning() {
        Boolean running = docker.inspectContainerCmd(container.getContainerId()).exec().getState().getRunning();
        return Boolean.TRUE.equals(running);
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        container.stop(); // removes the container and its volumes
    }

    private int currentHostPort() {
        Ports ports = docker.inspectContainerCmd(container.getContainerId()).exec().getNetworkSettings().getPorts();
        Ports.Binding[] bindings = ports.getBindings().get(ExposedPort.tcp(PG_PORT));
        if (bindings == null || bindings.length == 0) {
            throw new IllegalStateException("port " + PG_PORT + " of the container is not published");
        }
        return Integer.parseInt(bindings[0].getHostPortSpec());
    }

    private void awaitState(boolean running) {
        long deadline = System.nanoTime() + READY_TIMEOUT.toNanos();
        while (isRunning() != running) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("container did not reach running=" + running);
            }
            pause();
        }
    }

    private void awaitAcceptingConnections() {
        String url = "jdbc:postgresql://" + host() + ":" + port + "/postgres";
        Properties props = new Properties();
        props.setProperty("user", SUPERUSER);
        props.setProperty("password", SUPERUSER);
        props.setProperty("connectTimeout", "2");
        props.setProperty("socketTimeout", "2");
        long deadline = System.nanoTime() + READY_TIMEOUT.toNanos();
        while (true) {
            try (Connection c = DriverManager.getConnection(url, props)) {
                c.createStatement().execute("SELECT 1");
                return;
            } catch (SQLException e) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("container server did not accept connections", e);
                }
                pause();
            }
        }
    }

    private static void pause() {
        try {
            Thread.sleep(100);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
    }
}
