package dev.lockstep.cli;

import dev.lockstep.NodeConfig;
import dev.lockstep.embedded.EmbeddedServer;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

/**
 * The three servers the demo runs on: embedded ones it starts, kills and restarts itself, or
 * external ones named by URL, where faults come from outside (the docker-compose script).
 */
interface DemoCluster extends AutoCloseable {

    /** The node that starts as principal. */
    NodeConfig principal();

    /** The node that starts as mirror. */
    NodeConfig mirror();

    /** The witness. */
    NodeConfig witness();

    /** Whether the demo itself can kill and restart servers. */
    boolean injectsFaults();

    /** SIGKILLs a partner's server. */
    void kill(String node);

    /** Starts a killed partner's server again on its data. */
    void restart(String node);

    /** A direct connection to a partner (autocommit on), not through Lockstep. */
    default Connection connect(String node) throws SQLException {
        NodeConfig n = principal().name().equals(node) ? principal() : mirror();
        return DriverManager.getConnection(n.jdbcUrl(), n.user(), n.password());
    }

    @Override
    void close();

    /** Three embedded servers on 127.0.0.1, started in parallel; closing stops them and deletes their data. */
    static DemoCluster embedded(List<String> names) {
        Map<String, String> settings = Map.of("max_connections", "100", "max_prepared_transactions", "64");
        List<CompletableFuture<EmbeddedServer>> starts = new ArrayList<>();
        for (String name : names) {
            starts.add(CompletableFuture.supplyAsync(() -> EmbeddedServer.start(name, settings)));
        }
        Map<String, EmbeddedServer> servers = new LinkedHashMap<>();
        RuntimeException failure = null;
        for (int i = 0; i < names.size(); i++) {
            try {
                servers.put(names.get(i), starts.get(i).join());
            } catch (CompletionException e) {
                failure = failure == null ? new IllegalStateException("embedded server " + names.get(i) + " did not start: "
                        + e.getCause().getMessage(), e.getCause()) : failure;
            }
        }
        if (failure != null) {
            servers.values().forEach(EmbeddedServer::close);
            throw failure;
        }
        return new Embedded(servers);
    }

    /** External servers; the demo cannot kill them. */
    static DemoCluster external(NodeConfig principal, NodeConfig mirror, NodeConfig witness) {
        return new DemoCluster() {
            @Override public NodeConfig principal() { return principal; }
            @Override public NodeConfig mirror() { return mirror; }
            @Override public NodeConfig witness() { return witness; }
            @Override public boolean injectsFaults() { return false; }
            @Override public void kill(String node) { throw new UnsupportedOperationException("external servers are killed from outside"); }
            @Override public void restart(String node) { throw new UnsupportedOperationException("external servers are restarted from outside"); }
            @Override public void close() { }
        };
    }

    /** Embedded servers; the first two are the partners, the third the witness. */
    final class Embedded implements DemoCluster {
        private final Map<String, EmbeddedServer> servers;
        private final List<String> names;

        Embedded(Map<String, EmbeddedServer> servers) {
            this.servers = servers;
            this.names = List.copyOf(servers.keySet());
        }

        private NodeConfig node(int i) {
            EmbeddedServer s = servers.get(names.get(i));
            return NodeConfig.of(names.get(i), s.jdbcUrl("postgres"), s.user(), s.password());
        }

        @Override public NodeConfig principal() { return node(0); }
        @Override public NodeConfig mirror() { return node(1); }
        @Override public NodeConfig witness() { return node(2); }
        @Override public boolean injectsFaults() { return true; }
        @Override public void kill(String node) { servers.get(node).kill(); }
        @Override public void restart(String node) { servers.get(node).restart(); }

        @Override
        public void close() {
            servers.values().forEach(EmbeddedServer::close);
        }
    }
}
