package dev.lockstep.it;

import dev.lockstep.NodeConfig;
import dev.lockstep.testing.PgNode;
import dev.lockstep.testing.TcpProxy;
import dev.lockstep.witness.WitnessStore;
import org.postgresql.ds.PGSimpleDataSource;

import java.sql.SQLException;
import java.time.Duration;

/** A real witness server for the tests of one class, with its store installed. */
final class Witness implements AutoCloseable {

    private final PgNode node;
    private final String database;
    private final WitnessStore store;

    private Witness(PgNode node, String database, WitnessStore store) {
        this.node = node;
        this.database = database;
        this.store = store;
    }

    static Witness start() throws SQLException {
        PgNode node = PgNode.start("witness");
        String database = node.createDatabase("witness");
        PGSimpleDataSource source = new PGSimpleDataSource();
        // The tests read the truth around the proxy, whose faults are meant for the coordinators.
        source.setUrl(node.directJdbcUrl(database));
        source.setUser(node.user());
        source.setPassword(node.password());
        WitnessStore store = new WitnessStore(source, Duration.ofSeconds(2), "witness");
        store.install();
        return new Witness(node, database, store);
    }

    WitnessStore store() {
        return store;
    }

    PgNode node() {
        return node;
    }

    /** The witness as a coordinator reaches it: through its proxy. */
    NodeConfig config() {
        return NodeConfig.of("witness", node.jdbcUrl(database), node.user(), node.password());
    }

    /** The witness reached around its proxy, for a coordinator that must keep it while others lose it. */
    NodeConfig directConfig() {
        return NodeConfig.of("witness", node.directJdbcUrl(database), node.user(), node.password());
    }

    /** The witness reached through a proxy of the caller's own, for a coordinator that must lose it alone. */
    NodeConfig configThrough(TcpProxy proxy) {
        return NodeConfig.of("witness", "jdbc:postgresql://127.0.0.1:" + proxy.port() + "/" + database, node.user(), node.password());
    }

    @Override
    public void close() {
        node.close();
    }
}
