package dev.lockstep.testing;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(20)
class TcpProxyTest {

    private EchoServer echo;
    private TcpProxy proxy;

    @BeforeEach
    void start() throws IOException {
        echo = new EchoServer();
        proxy = TcpProxy.start("test", "127.0.0.1", echo.port());
    }

    @AfterEach
    void stop() throws IOException {
        proxy.close();
        echo.close();
    }

    @Test
    void forwardsHundredsOfConcurrentConnections() throws IOException {
        List<Socket> clients = new ArrayList<>();
        try {
            for (int i = 0; i < 300; i++) {
                clients.add(connect());
            }
            await().atMost(Duration.ofSeconds(5)).until(() -> proxy.openConnections() == 300);
            for (int i = 0; i < clients.size(); i++) {
                assertThat(roundTrip(clients.get(i), "hello " + i)).isEqualTo("hello " + i);
            }
        } finally {
            for (Socket c : clients) {
                c.close();
            }
        }
        await().atMost(Duration.ofSeconds(5)).until(() -> proxy.openConnections() == 0);
    }

    @Test
    void forwardsLargeTransfersIntact() throws IOException {
        byte[] payload = new byte[4 * 1024 * 1024];
        for (int i = 0; i < payload.length; i++) {
            payload[i] = (byte) (i * 31 + (i >>> 11));
        }
        try (Socket client = connect()) {
            Thread writer = new Thread(() -> {
                try {
                    client.getOutputStream().write(payload);
                } catch (IOException e) {
                    throw new RuntimeException(e);
                }
            });
            writer.start();
            byte[] back = client.getInputStream().readNBytes(payload.length);
            assertThat(back).isEqualTo(payload);
        }
    }

    @Test
    void partitionResetsOpenConnectionsAndNewOnesUntilHeal() throws IOException {
        try (Socket open = connect()) {
            assertThat(roundTrip(open, "before")).isEqualTo("before");

            proxy.partition();

            assertBroken(open);
            try (Socket fresh = connect()) {
                assertBroken(fresh);
            }
            proxy.heal();
            try (Socket healed = connect()) {
                assertThat(roundTrip(healed, "after")).isEqualTo("after");
            }
        }
    }

    @Test
    void blackholeForwardsNothingButKeepsSocketsOpenAndHealResumes() throws IOException {
        try (Socket open = connect()) {
            assertThat(roundTrip(open, "before")).isEqualTo("before");
            proxy.blackhole();

            open.getOutputStream().write("held".getBytes(StandardCharsets.UTF_8));
            try (Socket fresh = connect()) {
                fresh.getOutputStream().write("new".getBytes(StandardCharsets.UTF_8));
                assertNothingArrives(open);
                assertNothingArrives(fresh);
                assertThat(proxy.openConnections()).isEqualTo(2);
                assertThat(echo.accepted()).as("a held connection does not reach the server").isEqualTo(1);

                proxy.heal();

                assertThat(read(open, 4)).isEqualTo("held");
                assertThat(read(fresh, 3)).isEqualTo("new");
            }
        }
    }

    @Test
    void partitionDropsConnectionsHeldByBlackhole() throws IOException {
        try (Socket open = connect()) {
            assertThat(roundTrip(open, "x")).isEqualTo("x");
            proxy.blackhole();
            proxy.partition();
            assertBroken(open);
            await().atMost(Duration.ofSeconds(2)).until(() -> proxy.openConnections() == 0);
        }
    }

    @Test
    void retargetSendsNewConnectionsToAnotherServer() throws IOException {
        try (EchoServer other = new EchoServer(); Socket first = connect()) {
            assertThat(roundTrip(first, "one")).isEqualTo("one");
            proxy.retarget(other.port());
            try (Socket second = connect()) {
                assertThat(roundTrip(second, "two")).isEqualTo("two");
            }
            assertThat(other.accepted()).isEqualTo(1);
            assertThat(proxy.targetPort()).isEqualTo(other.port());
            assertThat(roundTrip(first, "still")).as("open connections stay where they were").isEqualTo("still");
        }
    }

    @Test
    void clientIsResetWhenTheServerIsGone() throws IOException {
        echo.close();
        try (Socket client = connect()) {
            assertBroken(client);
        }
    }

    @Test
    void closeReleasesThePortAndStopsItsThreads() throws IOException {
        try (Socket open = connect()) {
            assertThat(roundTrip(open, "x")).isEqualTo("x");
            proxy.close();
            proxy.close(); // idempotent
            assertBroken(open);
        }
        assertThatThrownBy(this::connect).isInstanceOf(IOException.class);
        await().atMost(Duration.ofSeconds(5)).until(() -> Thread.getAllStackTraces().keySet().stream()
                .noneMatch(t -> t.getName().startsWith("tcp-proxy-test-")));
    }

    private Socket connect() throws IOException {
        Socket socket = new Socket(InetAddress.getLoopbackAddress(), proxy.port());
        socket.setTcpNoDelay(true);
        socket.setSoTimeout(5_000);
        return socket;
    }

    private static String roundTrip(Socket socket, String message) throws IOException {
        socket.getOutputStream().write(message.getBytes(StandardCharsets.UTF_8));
        return read(socket, message.length());
    }

    private static String read(Socket socket, int length) throws IOException {
        return new String(socket.getInputStream().readNBytes(length), StandardCharsets.UTF_8);
    }

    /** The socket fails at once: reset or end of stream, within its 5 s read timeout anyway. */
    private static void assertBroken(Socket socket) {
        long started = System.nanoTime();
        try {
            socket.getOutputStream().write('x');
            int b = socket.getInputStream().read();
            assertThat(b).as("end of stream").isEqualTo(-1);
        } catch (SocketTimeoutException e) {
            throw new AssertionError("connection was not broken", e);
        } catch (IOException e) {
            // reset: broken, as expected
        }
        assertThat(Duration.ofNanos(System.nanoTime() - started)).isLessThan(Duration.ofSeconds(2));
    }

    private static void assertNothingArrives(Socket socket) throws IOException {
        int timeout = socket.getSoTimeout();
        socket.setSoTimeout(300);
        try {
            InputStream in = socket.getInputStream();
            assertThatThrownBy(in::read).isInstanceOf(SocketTimeoutException.class);
        } finally {
            socket.setSoTimeout(timeout);
        }
        assertThat(socket.isClosed()).isFalse();
    }
}
