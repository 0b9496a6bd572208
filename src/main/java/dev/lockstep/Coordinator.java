package dev.lockstep;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import dev.lockstep.commit.CommitProtocol;
import dev.lockstep.commit.InDoubtResolver;
import dev.lockstep.commit.NodeChecks;
import dev.lockstep.commit.NodeSchema;
import dev.lockstep.core.NodeRole;
import dev.lockstep.core.NodeView;
import dev.lockstep.core.PartnershipCheck;
import dev.lockstep.jdbc.SqlStates;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The coordinator inside one application instance: checks and prepares both nodes, owns one
 * connection pool per node, runs the commit protocol and in-doubt resolution.
 */
final class Coordinator implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(Coordinator.class);

    private final LockstepConfig config;
    private final long epoch;
    private final HikariDataSource principalPool;
    private final HikariDataSource mirrorPool;
    private final ScheduledExecutorService resolverSchedule;
    private final CommitProtocol protocol;
    private final InDoubtResolver resolver;

    private Coordinator(LockstepConfig config, long epoch) {
        this.config = config;
        this.epoch = epoch;
        Set<String> inFlight = ConcurrentHashMap.newKeySet();
        this.principalPool = pool(config.principal(), config.poolSize(), principalProperties(epoch));
        this.mirrorPool = pool(config.mirror(), config.poolSize() + 2, mirrorProperties());
        this.protocol = new CommitProtocol(new CommitProtocol.Settings(config.partnership(), incarnation(config),
                config.principal().name(), config.mirror().name(), config.remoteCallTimeout()),
                () -> epoch, mirrorPool, config.commitObserver(), inFlight, new DropStaleConnections());
        this.resolver = new InDoubtResolver(config.partnership(),
                new InDoubtResolver.Node(config.principal().name(), principalPool),
                new InDoubtResolver.Node(config.mirror().name(), mirrorPool),
                inFlight::contains, config.inDoubtGrace(), config.remoteCallTimeout());
        this.resolverSchedule = Executors.newSingleThreadScheduledExecutor(
                daemonThreads("lockstep-" + config.partnership() + "-in-doubt"));
    }

    /**
     * Checks both nodes, installs the schema if configured, agrees on the epoch, resolves
     * in-doubt transactions and starts the pools.
     */
    static Coordinator start(LockstepConfig config) throws SQLException {
        NodeView principal = prepareNode(config, config.principal(), NodeRole.PRINCIPAL);
        NodeView mirror = prepareNode(config, config.mirror(), NodeRole.MIRROR);
        List<String> problems = PartnershipCheck.problems(config.partnership(), principal, mirror);
        if (!problems.isEmpty()) {
            throw SqlStates.error(SqlStates.NOT_READY, "lockstep: partnership " + config.partnership()
                    + " cannot start: " + String.join("; ", problems), null);
        }
        Coordinator coordinator = new Coordinator(config, principal.epoch());
        try {
            coordinator.resolver.resolve();
        } catch (RuntimeException e) {
            coordinator.close();
            throw e;
        }
        long interval = config.resolverInterval().toMillis();
        coordinator.resolverSchedule.scheduleWithFixedDelay(coordinator::resolveQuietly, interval, interval, TimeUnit.MILLISECONDS);
        LOG.info("lockstep: coordinator {} of partnership {} started at epoch {}: principal {}, mirror {}",
                config.coordinatorId(), config.partnership(), principal.epoch(), principal.node(), mirror.node());
        return coordinator;
    }

    private static NodeView prepareNode(LockstepConfig config, NodeConfig node, NodeRole role) throws SQLException {
        try (Connection c = connectDirect(config, node)) {
            c.setAutoCommit(false);
            NodeChecks.requirePreparedTransactions(c, node.name(), config.poolSize());
            NodeChecks.requireReplicationRole(c, node.name());
            if (config.installSchema()) {
                NodeSchema.install(c, config.partnership(), node.name(), role);
            }
            return NodeSchema.readView(c, node.name());
        }
    }

    static Connection connectDirect(LockstepConfig config, NodeConfig node) throws SQLException {
        Properties p = baseProperties(node, config);
        try {
            return DriverManager.getConnection(node.jdbcUrl(), p);
        } catch (SQLException e) {
            String state = e.getSQLState() != null && !e.getSQLState().startsWith("08") ? e.getSQLState() : SqlStates.CONNECTION_FAILED;
            throw SqlStates.error(state, "lockstep: cannot connect to node " + node.name() + " at " + node.jdbcUrl()
                    + " as " + node.user() + ": " + e.getMessage(), e);
        }
    }

    private static Properties baseProperties(NodeConfig node, LockstepConfig config) {
        Properties p = new Properties();
        p.setProperty("user", node.user());
        p.setProperty("password", node.password());
        p.setProperty("connectTimeout", Long.toString(Math.max(1, config.connectTimeout().toSeconds())));
        p.setProperty("ApplicationName", "lockstep-" + config.coordinatorId());
        return p;
    }

    private Properties principalProperties(long epoch) {
        Properties p = new Properties();
        // Set at connection start, without a round trip: the capture triggers and collect()
        // compare it with the node's epoch (fencing, invariant I4).
        p.setProperty("options", "-c lockstep.epoch=" + epoch);
        return p;
    }

    private Properties mirrorProperties() {
        Properties p = new Properties();
        p.setProperty("socketTimeout", Long.toString(config.remoteCallTimeout().toSeconds() + 5));
        // Set at connection start, without a round trip: user triggers and capture do not fire
        // while applying; row images parse as capture wrote them; appliers look rows up by key.
        p.setProperty("options", "-c session_replication_role=replica -c extra_float_digits=3 -c DateStyle=ISO,YMD"
                + " -c IntervalStyle=postgres -c bytea_output=hex -c enable_seqscan=off -c enable_hashjoin=off"
                + " -c enable_mergejoin=off");
        return p;
    }

    private HikariDataSource pool(NodeConfig node, int size, Properties extra) {
        HikariConfig h = new HikariConfig();
        h.setPoolName("lockstep-" + config.partnership() + "-" + node.name());
        h.setJdbcUrl(node.jdbcUrl());
        h.setUsername(node.user());
        h.setPassword(node.password());
        h.setAutoCommit(false);
        h.setMaximumPoolSize(size);
        h.setMinimumIdle(Math.min(2, size));
        h.setConnectionTimeout(Math.max(250, config.connectTimeout().toMillis()));
        h.setValidationTimeout(Math.max(250, Math.min(config.connectTimeout().toMillis(), 5000)));
        h.setInitializationFailTimeout(-1);
        h.setExceptionOverrideClassName(KeepConnectionOnStatementError.class.getName());
        Properties p = baseProperties(node, config);
        p.remove("user");
        p.remove("password");
        p.putAll(extra);
        h.setDataSourceProperties(p);
        return new HikariDataSource(h);
    }

    /**
     * The coordinator id plus a part drawn at each start, so that a restarted coordinator, or two
     * started from one properties file, never reuse a global transaction id.
     */
    private static String incarnation(LockstepConfig config) {
        return config.coordinatorId() + "-" + Integer.toHexString(0x100000 + new java.security.SecureRandom().nextInt(0xf00000));
    }

    /** After one broken link to a node, the pool's other idle connections to it are replaced. */
    private final class DropStaleConnections implements CommitProtocol.LinkLoss {
        @Override
        public void principalLinkLost() {
            principalPool.getHikariPoolMXBean().softEvictConnections();
        }

        @Override
        public void mirrorLinkLost() {
            mirrorPool.getHikariPoolMXBean().softEvictConnections();
        }
    }

    private void resolveQuietly() {
        try {
            InDoubtResolver.Result r = resolver.resolve();
            if (r.committed() + r.rolledBack() > 0) {
                LOG.info("lockstep: in-doubt resolution committed {} and rolled back {} transactions", r.committed(), r.rolledBack());
            }
        } catch (RuntimeException e) {
            LOG.warn("lockstep: in-doubt resolution failed: {}", e.toString());
        }
    }

    private static ThreadFactory daemonThreads(String prefix) {
        AtomicInteger n = new AtomicInteger();
        return r -> {
            Thread t = new Thread(r, prefix + "-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
    }

    LockstepConfig config() { return config; }
    long epoch() { return epoch; }
    HikariDataSource principalPool() { return principalPool; }
    HikariDataSource mirrorPool() { return mirrorPool; }
    CommitProtocol protocol() { return protocol; }
    InDoubtResolver resolver() { return resolver; }

    @Override
    public void close() {
        resolverSchedule.shutdownNow();
        try {
            // Let a resolution pass that is under way finish before its pools close.
            resolverSchedule.awaitTermination(config.remoteCallTimeout().toMillis() * 2, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        principalPool.close();
        mirrorPool.close();
    }
}
