package dev.lockstep.testing;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A TCP proxy on 127.0.0.1 between clients and one server, with network faults.
 *
 * <p>Each client connection gets its own upstream connection and two blocking pump threads
 * (daemon, pooled): a blocked read hands bytes over with no selector hop, which keeps the commit
 * path that runs through it fast, and closing a socket is all it takes to stop a pump.
 *
 * <p>Modes: <b>forwarding</b> (normal), <b>partitioned</b> ({@link #partition()}: every
 * connection is reset, new ones are reset on accept) and <b>blackholed</b> ({@link #blackhole()}:
 * sockets stay open and nothing moves in either direction). {@link #heal()} returns to forwarding.
 */
public final class TcpProxy implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(TcpProxy.class);
    private static final int BUFFER_SIZE = 64 * 1024;
    private static final int CONNECT_TIMEOUT_MS = 5_000;
    private static final int BACKLOG = 1024;
    /** Pump threads only copy bytes; a small stack lets hundreds of connections stay cheap. */
    private static final long PUMP_STACK_BYTES = 256 * 1024;
    /** Upper bound on how long a held pump waits before it rechecks whether its link died. */
    private static final long HOLD_RECHECK_MS = 200;

    private enum Mode { FORWARDING, BLACKHOLED, PARTITIONED }

    private final String name;
    private final String targetHost;
    private final ServerSocket listener;
    private final ExecutorService pumps;
    private final Set<Link> links = ConcurrentHashMap.newKeySet();
    private final Object modeChanged = new Object();
    private volatile int targetPort;
    private volatile Mode mode = Mode.FORWARDING;
    private volatile boolean closed;

    private TcpProxy(String name, String targetHost, int targetPort) throws IOException {
        this.name = name;
        this.targetHost = targetHost;
        this.targetPort = targetPort;
        this.listener = new ServerSocket();
        listener.setReuseAddress(true);
        listener.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), BACKLOG);
        this.pumps = Executors.newCachedThreadPool(threads("tcp-proxy-" + name + "-", PUMP_STACK_BYTES));
        Thread acceptor = threads("tcp-proxy-" + name + "-accept-", 0).newThread(this::acceptLoop);
        acceptor.start();
    }

    /**
     * Starts a proxy on an ephemeral port of 127.0.0.1 that forwards to {@code targetHost:targetPort}.
     *
     * @param name names the proxy in thread names and log lines (usually the node's name)
     */
    public static TcpProxy start(String name, String targetHost, int targetPort) {
        try {
            return new TcpProxy(name, targetHost, targetPort);
        } catch (IOException e) {
            throw new UncheckedIOException("could not start proxy " + name, e);
        }
    }

    /** The port clients connect to on 127.0.0.1. */
    public int port() {
        return listener.getLocalPort();
    }

    /** The server port new connections are forwarded to. */
    public int targetPort() {
        return targetPort;
    }

    /** Number of client connections currently open through the proxy (held ones included). */
    public int openConnections() {
        return links.size();
    }

    /**
     * Cuts the link: resets every open connection on both sides at once, and resets new
     * connections as soon as they are accepted, until {@link #heal()}. Clients see an I/O error
     * on their next read or write, as when a peer vanishes.
     */
    public void partition() {
        setMode(Mode.PARTITIONED);
        links.forEach(Link::reset);
        log.info("proxy {}: partitioned (port {} -> {})", name, port(), targetPort);
    }

    /**
     * A silent partition, like a frozen network: open connections stay open but no byte moves in
     * either direction; new connections are accepted and get no byte (they do not even reach the
     * server). Clients hang until their own timeouts. {@link #heal()} releases held bytes.
     */
    public void blackhole() {
        setMode(Mode.BLACKHOLED);
        log.info("proxy {}: blackholed (port {} -> {})", name, port(), targetPort);
    }

    /**
     * Back to forwarding. Connections held by {@link #blackhole()} resume where they stopped, as
     * on a network that comes back; call {@link #partition()} first to drop them instead.
     */
    public void heal() {
        setMode(Mode.FORWARDING);
        log.info("proxy {}: healed (port {} -> {})", name, port(), targetPort);
    }

    /** Sends new connections to another server port (a server that came back elsewhere). */
    public void retarget(int port) {
        int old = targetPort;
        targetPort = port;
        log.info("proxy {}: retargeted from {} to {}", name, old, port);
    }

    /** Closes the listener and every connection and stops the threads. Idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            listener.close();
        } catch (IOException e) {
            log.debug("proxy {}: closing listener", name, e);
        }
        links.forEach(Link::reset);
        synchronized (modeChanged) {
            modeChanged.notifyAll();
        }
        pumps.shutdownNow();
        try {
            pumps.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void setMode(Mode next) {
        synchronized (modeChanged) {
            mode = next;
            modeChanged.notifyAll();
        }
    }

    private void acceptLoop() {
        while (!closed) {
            Socket client;
            try {
                client = listener.accept();
            } catch (IOException e) {
                if (!closed) {
                    log.warn("proxy {}: accept failed, proxy stops accepting", name, e);
                }
                return;
            }
            Link link = new Link(client);
            // Register before reading the mode: partition() sets the mode before it resets the
            // registered links, so a link accepted concurrently is reset by one side or the other.
            links.add(link);
            if (mode == Mode.PARTITIONED || closed) {
                link.reset();
            } else {
                try {
                    pumps.execute(link::connectAndPump);
                } catch (RuntimeException e) { // rejected: the proxy is closing
                    link.reset();
                }
            }
        }
    }

    /**
     * Blocks while the proxy holds traffic. Returns true to forward, false when the caller must
     * drop its link (partitioned, link closed, proxy closed). The fast path is one volatile read.
     */
    private boolean awaitForwarding(Link link) {
        if (mode == Mode.FORWARDING) {
            return !link.isClosed();
        }
        synchronized (modeChanged) {
            while (mode == Mode.BLACKHOLED && !link.isClosed() && !closed) {
                try {
                    modeChanged.wait(HOLD_RECHECK_MS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return false;
                }
            }
            return mode == Mode.FORWARDING && !link.isClosed();
        }
    }

    private static ThreadFactory threads(String prefix, long stackSize) {
        AtomicInteger counter = new AtomicInteger();
        return r -> {
            Thread t = new Thread(null, r, prefix + counter.incrementAndGet(), stackSize);
            t.setDaemon(true);
            return t;
        };
    }

    /** One client connection and its upstream connection. */
    private final class Link {
        private final Socket client;
        private Socket server; // guarded by this
        private boolean closed; // guarded by this
        private int directionsDone; // guarded by this

        Link(Socket client) {
            this.client = client;
        }

        /** Runs on a pump thread: connect upstream (unless held), then pump client -> server. */
        void connectAndPump() {
            try {
                client.setTcpNoDelay(true);
                if (!awaitForwarding(this)) { // blackholed clients do not even reach the server
                    reset();
                    return;
                }
                Socket upstream = new Socket();
                upstream.setTcpNoDelay(true);
                upstream.connect(new InetSocketAddress(targetHost, targetPort), CONNECT_TIMEOUT_MS);
                if (!attach(upstream)) {
                    return;
                }
                pumps.execute(() -> pump(upstream, client));
                pump(client, upstream);
            } catch (IOException | RuntimeException e) { // refused, or the proxy is closing
                log.debug("proxy {}: upstream connection failed: {}", name, e.toString());
                reset();
            }
        }

        private synchronized boolean attach(Socket upstream) {
            if (closed) {
                closeQuietly(upstream, true);
                return false;
            }
            server = upstream;
            return true;
        }

        private void pump(Socket from, Socket to) {
            byte[] buffer = new byte[BUFFER_SIZE];
            try {
                InputStream in = from.getInputStream();
                OutputStream out = to.getOutputStream();
                while (true) {
                    int n = in.read(buffer);
                    if (!awaitForwarding(this)) {
                        reset();
                        return;
                    }
                    if (n < 0) { // orderly close: pass the half-close on, as TCP would
                        to.shutdownOutput();
                        directionDone();
                        return;
                    }
                    out.write(buffer, 0, n);
                }
            } catch (IOException e) {
                reset(); // one side failed: fail the other one too, abruptly
            }
        }

        private void directionDone() {
            boolean both;
            synchronized (this) {
                both = ++directionsDone == 2;
            }
            if (both) {
                close(false);
            }
        }

        synchronized boolean isClosed() {
            return closed;
        }

        /** Closes both sides with RST (SO_LINGER 0), so peers notice at once. */
        void reset() {
            close(true);
        }

        private void close(boolean abort) {
            Socket upstream;
            synchronized (this) {
                if (closed) {
                    return;
                }
                closed = true;
                upstream = server;
            }
            links.remove(this);
            closeQuietly(client, abort);
            if (upstream != null) {
                closeQuietly(upstream, abort);
            }
        }

        private void closeQuietly(Socket socket, boolean abort) {
            try {
                if (abort) {
                    socket.setSoLinger(true, 0);
                }
            } catch (IOException e) {
                // already closed: nothing to abort
            }
            try {
                socket.close();
            } catch (IOException e) {
                log.debug("proxy {}: close failed", name, e);
            }
        }
    }
}
