package dev.lockstep.cli;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.List;
import java.util.SplittableRandom;

/**
 * pgbench's default "TPC-B (sort of)" workload: its four tables, loaded the way
 * {@code pgbench -i -I dtGvp} loads them (server-side generate_series, then primary keys), and its
 * transaction. Unlike pgbench, {@code pgbench_history} has a primary key ({@code hid bigserial}),
 * because Lockstep addresses mirrored rows by primary key.
 */
public final class TpcbWorkload {

    /** The tables, schema-qualified, in the order they are attached. */
    public static final List<String> TABLES = List.of("public.pgbench_branches", "public.pgbench_tellers",
            "public.pgbench_accounts", "public.pgbench_history");
    /** Rows per scale unit, as in pgbench. */
    public static final int BRANCHES_PER_SCALE = 1;
    public static final int TELLERS_PER_SCALE = 10;
    public static final int ACCOUNTS_PER_SCALE = 100_000;

    private TpcbWorkload() {
    }

    /**
     * Creates and fills the tables on a connection (autocommit on), dropping any that exist, then
     * vacuums and analyzes them. Deterministic: every node loaded with the same scale holds the
     * same rows.
     *
     * @param c     a connection with autocommit on
     * @param scale the scale factor
     */
    public static void createAndLoad(Connection c, int scale) throws SQLException {
        try (Statement st = c.createStatement()) {
            st.execute("DROP TABLE IF EXISTS pgbench_history, pgbench_tellers, pgbench_accounts, pgbench_branches");
            st.execute("CREATE TABLE pgbench_branches (bid int NOT NULL, bbalance int, filler char(88)) WITH (fillfactor = 100)");
            st.execute("CREATE TABLE pgbench_tellers (tid int NOT NULL, bid int, tbalance int, filler char(84)) WITH (fillfactor = 100)");
            st.execute("CREATE TABLE pgbench_accounts (aid int NOT NULL, bid int, abalance int, filler char(84)) WITH (fillfactor = 100)");
            st.execute("CREATE TABLE pgbench_history (hid bigserial PRIMARY KEY, tid int, bid int, aid int, delta int,"
                    + " mtime timestamp, filler char(22))");
            st.execute("INSERT INTO pgbench_branches (bid, bbalance) SELECT bid, 0 FROM generate_series(1, "
                    + (long) BRANCHES_PER_SCALE * scale + ") AS bid");
            st.execute("INSERT INTO pgbench_tellers (tid, bid, tbalance) SELECT tid, (tid - 1) / " + TELLERS_PER_SCALE
                    + " + 1, 0 FROM generate_series(1, " + (long) TELLERS_PER_SCALE * scale + ") AS tid");
            st.execute("INSERT INTO pgbench_accounts (aid, bid, abalance, filler) SELECT aid, (aid - 1) / " + ACCOUNTS_PER_SCALE
                    + " + 1, 0, '' FROM generate_series(1, " + (long) ACCOUNTS_PER_SCALE * scale + ") AS aid");
            st.execute("ALTER TABLE pgbench_branches ADD PRIMARY KEY (bid)");
            st.execute("ALTER TABLE pgbench_tellers ADD PRIMARY KEY (tid)");
            st.execute("ALTER TABLE pgbench_accounts ADD PRIMARY KEY (aid)");
            st.execute("VACUUM ANALYZE pgbench_branches, pgbench_tellers, pgbench_accounts, pgbench_history");
        }
    }

    /** Whether the tables exist on the connection's database. */
    public static boolean exists(Connection c) throws SQLException {
        try (Statement st = c.createStatement();
             ResultSet rs = st.executeQuery("SELECT to_regclass('pgbench_branches') IS NOT NULL"
                     + " AND to_regclass('pgbench_tellers') IS NOT NULL AND to_regclass('pgbench_accounts') IS NOT NULL"
                     + " AND to_regclass('pgbench_history') IS NOT NULL")) {
            rs.next();
            return rs.getBoolean(1);
        }
    }

    /** The scale of loaded tables: the number of branches, as pgbench reads it. */
    public static int detectScale(Connection c) throws SQLException {
        return (int) NodeInspector.queryLong(c, "SELECT count(*) FROM pgbench_branches");
    }

    /**
     * A client running the transaction on its own connection.
     *
     * @param c     the client's connection; autocommit is turned off
     * @param scale the scale of the loaded tables
     */
    public static ClientRunner.Client client(Connection c, int scale) throws SQLException {
        return new TpcbClient(c, scale);
    }

    /**
     * A client that runs each transaction on two nodes with two-phase commit and nothing else:
     * the statements and {@code PREPARE TRANSACTION} on the first, the writes and {@code COMMIT}
     * on the second, then {@code COMMIT PREPARED} on the first. No capture, journal, fencing or
     * coordinator: the ceiling of any design that applies each transaction on both nodes of this
     * machine, for comparison with Lockstep. Its transaction commits itself; the runner's commit
     * then finds nothing open.
     *
     * <p>With {@code journal}, the floor of trigger capture instead: the first node's capture
     * triggers ({@code sql/bench/capture_floor.sql}) collect the row images, and before preparing
     * the client stores them as a journal record there and then on the second node.
     *
     * @param first   the node that prepares; autocommit is turned off
     * @param second  the node that applies and commits first; autocommit is turned off
     * @param scale   the scale of the loaded tables (the same on both)
     * @param journal whether to store each transaction's captured row images on both nodes
     */
    public static ClientRunner.Client twoNodeClient(Connection first, Connection second, int scale, boolean journal)
            throws SQLException {
        try {
            return new TwoNodeClient(first, second, scale, journal);
        } catch (SQLException e) {
            second.close();
            throw e;
        }
    }

    /**
     * Runs {@code COMMIT PREPARED} or {@code ROLLBACK PREPARED}, which may not run inside a
     * transaction, on a client connection that otherwise keeps autocommit off.
     */
    public static void finishPrepared(Connection c, String sql) throws SQLException {
        c.setAutoCommit(true);
        try (Statement st = c.createStatement()) {
            st.execute(sql);
        } finally {
            c.setAutoCommit(false);
        }
    }

    private static final class TwoNodeClient extends ConnectionClient {
        private final TpcbClient onFirst;
        private final TpcbClient onSecond;
        private final PreparedStatement journalOnFirst;
        private final PreparedStatement journalOnSecond;

        TwoNodeClient(Connection first, Connection second, int scale, boolean journal) throws SQLException {
            super(first);
            onFirst = new TpcbClient(first, scale);
            onSecond = new TpcbClient(second, scale);
            journalOnFirst = journal ? first.prepareStatement("INSERT INTO bench_floor_journal (gid, changes)"
                    + " VALUES (?, ('[' || substr(current_setting('bench.changes'), 2) || ']')::json) RETURNING changes::text") : null;
            journalOnSecond = journal ? second.prepareStatement("INSERT INTO bench_floor_journal (gid, changes) VALUES (?, ?::json)") : null;
        }

        @Override
        public void transaction(SplittableRandom random) throws SQLException {
            Change change = Change.next(random, onFirst.scale);
            // Unique across clients and runs: it keys the floor's journal, which keeps every run's records.
            String id = "bench-two-" + java.util.UUID.randomUUID();
            String gid = "'" + id + "'";
            onFirst.run(change, true);
            String changes = journalOnFirst == null ? null : storeOnFirst(id);
            try (Statement st = connection().createStatement()) {
                st.execute("PREPARE TRANSACTION " + gid);
            }
            try {
                onSecond.run(change, false);
                if (changes != null) {
                    journalOnSecond.setString(1, id);
                    journalOnSecond.setString(2, changes);
                    journalOnSecond.executeUpdate();
                }
                onSecond.connection().commit();
            } catch (SQLException e) {
                onSecond.connection().rollback();
                finishPrepared(connection(), "ROLLBACK PREPARED " + gid);
                throw e;
            }
            finishPrepared(connection(), "COMMIT PREPARED " + gid);
        }

        private String storeOnFirst(String id) throws SQLException {
            journalOnFirst.setString(1, id);
            try (ResultSet rs = journalOnFirst.executeQuery()) {
                rs.next();
                return rs.getString(1);
            }
        }

        @Override
        public void close() throws SQLException {
            try {
                onSecond.close();
            } finally {
                super.close();
            }
        }
    }

    /** One transaction's random choices, so that two nodes can run the same one. */
    private record Change(int aid, int tid, int bid, int delta) {
        static Change next(SplittableRandom random, int scale) {
            return new Change(1 + random.nextInt(ACCOUNTS_PER_SCALE * scale), 1 + random.nextInt(TELLERS_PER_SCALE * scale),
                    1 + random.nextInt(BRANCHES_PER_SCALE * scale), random.nextInt(-5000, 5001));
        }
    }

    private static final class TpcbClient extends ConnectionClient {
        private final int scale;
        private final PreparedStatement updateAccount;
        private final PreparedStatement selectAccount;
        private final PreparedStatement updateTeller;
        private final PreparedStatement updateBranch;
        private final PreparedStatement insertHistory;

        TpcbClient(Connection connection, int scale) throws SQLException {
            super(connection);
            this.scale = scale;
            updateAccount = prepare("UPDATE pgbench_accounts SET abalance = abalance + ? WHERE aid = ?");
            selectAccount = prepare("SELECT abalance FROM pgbench_accounts WHERE aid = ?");
            updateTeller = prepare("UPDATE pgbench_tellers SET tbalance = tbalance + ? WHERE tid = ?");
            updateBranch = prepare("UPDATE pgbench_branches SET bbalance = bbalance + ? WHERE bid = ?");
            insertHistory = prepare(
                    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (?, ?, ?, ?, CURRENT_TIMESTAMP)");
        }

        @Override
        public void transaction(SplittableRandom random) throws SQLException {
            run(Change.next(random, scale), true);
        }

        /** The transaction's statements; without the read when only its writes are wanted. */
        void run(Change change, boolean withRead) throws SQLException {
            updateAccount.setInt(1, change.delta());
            updateAccount.setInt(2, change.aid());
            updateAccount.executeUpdate();
            if (withRead) {
                selectAccount.setInt(1, change.aid());
                try (ResultSet rs = selectAccount.executeQuery()) {
                    rs.next();
                }
            }
            updateTeller.setInt(1, change.delta());
            updateTeller.setInt(2, change.tid());
            updateTeller.executeUpdate();
            updateBranch.setInt(1, change.delta());
            updateBranch.setInt(2, change.bid());
            updateBranch.executeUpdate();
            insertHistory.setInt(1, change.tid());
            insertHistory.setInt(2, change.bid());
            insertHistory.setInt(3, change.aid());
            insertHistory.setInt(4, change.delta());
            insertHistory.executeUpdate();
        }

    }
}
