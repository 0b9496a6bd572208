package dev.lockstep.health;

import dev.lockstep.core.PartnerHealth;
import dev.lockstep.testing.PgNode;
import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.sql.DriverManager;
import java.time.Duration;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** The failure detector against a real server that is killed, frozen and cut off. */
class FailureDetectorTest {

    private PgNode node;
    private ScheduledExecutorService scheduler;
    private FailureDetector detector;
    private final List<PartnerHealth> changes = new CopyOnWriteArrayList<>();

    @BeforeEach
    void start() {
        node = PgNode.start("probed");
        scheduler = Executors.newScheduledThreadPool(2);
    }

    @AfterEach
    void stop() {
        if (detector != null) {
            detector.close();
        }
        scheduler.shutdownNow();
        node.close();
    }

    private void detect(Duration partnerTimeout) {
        NodeProbe probe = new NodeProbe("probed", () -> {
            Properties p = new Properties();
            p.setProperty("user", node.user());
            p.setProperty("password", node.password());
            p.setProperty("connectTimeout", "1");
            p.setProperty("socketTimeout", "1");
            return DriverManager.getConnection(node.jdbcUrl("postgres"), p);
        }, Duration.ofMillis(500));
        detector = new FailureDetector(List.of(probe), Duration.ofMillis(200), partnerTimeout, System::nanoTime, scheduler,
                (n, before, after) -> changes.add(after));
        detector.start();
        await().atMost(Duration.ofSeconds(10)).until(() -> detector.health("probed") == PartnerHealth.UP);
    }

    @Test
    void aKilledServerCountsAsFailedAtOnceNotAfterThePartnerTimeout() {
        // The partner timeout is far longer than the wait: only the hard-failure path can report FAILED.
        detect(Duration.ofMinutes(5));
        node.kill();
        await().atMost(Duration.ofSeconds(10)).until(() -> detector.health("probed") == PartnerHealth.FAILED);
        assertThat(detector.lastProbe("probed").hardFailure()).isTrue();
        await().atMost(Duration.ofSeconds(10)).until(() -> detector.breaker("probed").getState() == CircuitBreaker.State.OPEN);
        node.restart();
        await().atMost(Duration.ofSeconds(20)).until(() -> detector.health("probed") == PartnerHealth.UP);
        assertThat(detector.breaker("probed").getState()).isIn(CircuitBreaker.State.CLOSED, CircuitBreaker.State.HALF_OPEN);
    }

    @Test
    void aFrozenServerIsSuspectUntilThePartnerTimeoutThenFailed() {
        detect(Duration.ofSeconds(3));
        node.freeze();
        try {
            await().atMost(Duration.ofSeconds(10)).until(() -> changes.contains(PartnerHealth.FAILED));
            assertThat(detector.health("probed")).isEqualTo(PartnerHealth.FAILED);
            assertThat(changes).containsSubsequence(PartnerHealth.UP, PartnerHealth.SUSPECT, PartnerHealth.FAILED);
            assertThat(detector.lastProbe("probed").hardFailure()).isFalse();
        } finally {
            node.thaw();
        }
        await().atMost(Duration.ofSeconds(20)).until(() -> detector.health("probed") == PartnerHealth.UP);
    }

    @Test
    void aBlackHoledLinkIsSilenceAndHealsBack() {
        detect(Duration.ofSeconds(3));
        node.proxy().blackhole();
        await().atMost(Duration.ofSeconds(10)).until(() -> changes.contains(PartnerHealth.FAILED));
        assertThat(changes).containsSubsequence(PartnerHealth.UP, PartnerHealth.SUSPECT, PartnerHealth.FAILED);
        node.proxy().heal();
        await().atMost(Duration.ofSeconds(20)).until(() -> detector.health("probed") == PartnerHealth.UP);
    }

    @Test
    void aFailingListenerDoesNotStopTheProbing() {
        NodeProbe probe = new NodeProbe("probed", () -> DriverManager.getConnection(node.jdbcUrl("postgres"), node.user(),
                node.password()), Duration.ofMillis(500));
        detector = new FailureDetector(List.of(probe), Duration.ofMillis(100), Duration.ofMinutes(5), System::nanoTime, scheduler,
                (n, before, after) -> {
                    changes.add(after);
                    throw new IllegalStateException("listener bug");
                });
        detector.start();
        await().atMost(Duration.ofSeconds(10)).until(() -> detector.health("probed") == PartnerHealth.UP);
        node.kill();
        await().atMost(Duration.ofSeconds(10)).until(() -> changes.contains(PartnerHealth.FAILED));
    }
}
