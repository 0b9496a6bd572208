package dev.lockstep.it;

import dev.lockstep.LockstepDataSource;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.postgresql.PGConnection;
import org.postgresql.copy.CopyManager;

import java.io.StringReader;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Savepoint;
import java.sql.Statement;
import java.util.List;

import static dev.lockstep.it.TwoNodes.rows;
import static dev.lockstep.it.TwoNodes.value;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Connections from LockstepDataSource behave like plain JDBC connections, and what commits is mirrored. */
class JdbcBehaviourTest extends OnTwoNodes {

    private TwoNodes.Pair pair;
    private LockstepDataSource ds;

    @BeforeEach
    void partnership() throws SQLException {
        pair = nodes.newPair("jdbc");
        ds = pair.start();
        try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE item (id bigserial PRIMARY KEY, name text UNIQUE, qty int NOT NULL DEFAULT 0)");
        }
    }

    @AfterEach
    void close() {
        ds.close();
    }

    private List<List<Object>> onPrincipal() throws SQLException {
        try (Connection p = pair.principal()) {
            return rows(p, "SELECT * FROM item ORDER BY id");
        }
    }

    private List<List<Object>> onMirror() throws SQLException {
        try (Connection m = pair.mirror()) {
            return rows(m, "SELECT * FROM item ORDER BY id");
        }
    }

    private void assertMirrored(int expectedRows) throws SQLException {
        assertThat(onPrincipal()).hasSize(expectedRows);
        assertThat(onMirror()).isEqualTo(onPrincipal());
    }

    @Test
    void autocommitIsOnByDefaultAndEachStatementIsMirrored() throws SQLException {
        try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            assertThat(c.getAutoCommit()).isTrue();
            st.executeUpdate("INSERT INTO item (name) VALUES ('a')");
            assertMirrored(1);
            st.executeUpdate("UPDATE item SET qty = 5 WHERE name = 'a'");
            assertMirrored(1);
            assertThatThrownBy(c::commit).isInstanceOf(SQLException.class).hasMessageContaining("autocommit");
        }
    }

    @Test
    void rollbackLeavesNothingOnEitherNode() throws SQLException {
        try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            c.setAutoCommit(false);
            st.executeUpdate("INSERT INTO item (name) VALUES ('gone')");
            c.rollback();
            st.executeUpdate("INSERT INTO item (name) VALUES ('kept')");
            c.commit();
        }
        assertMirrored(1);
        assertThat(onMirror().get(0)).contains("kept");
    }

    @Test
    void closingWithAnOpenTransactionRollsItBack() throws SQLException {
        try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            c.setAutoCommit(false);
            st.executeUpdate("INSERT INTO item (name) VALUES ('abandoned')");
        }
        assertMirrored(0);
    }

    @Test
    void switchingAutocommitOnCommitsTheOpenTransaction() throws SQLException {
        try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            c.setAutoCommit(false);
            st.executeUpdate("INSERT INTO item (name) VALUES ('x')");
            c.setAutoCommit(true);
        }
        assertMirrored(1);
    }

    @Test
    void savepointsRollBackPartOfATransaction() throws SQLException {
        try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            c.setAutoCommit(false);
            st.executeUpdate("INSERT INTO item (name) VALUES ('before')");
            Savepoint sp = c.setSavepoint();
            st.executeUpdate("INSERT INTO item (name) VALUES ('undone')");
            st.executeUpdate("UPDATE item SET qty = 99");
            c.rollback(sp);
            st.executeUpdate("INSERT INTO item (name) VALUES ('after')");
            c.commit();
        }
        assertMirrored(2);
        assertThat(onMirror()).extracting(r -> r.get(1)).containsExactly("before", "after");
        assertThat(onMirror()).extracting(r -> r.get(2)).containsOnly(0);
    }

    @Test
    void batchesPreparedStatementsAndGeneratedKeys() throws SQLException {
        try (Connection c = ds.getConnection()) {
            c.setAutoCommit(false);
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO item (name, qty) VALUES (?, ?)")) {
                for (int i = 0; i < 50; i++) {
                    ps.setString(1, "b" + i);
                    ps.setInt(2, i);
                    ps.addBatch();
                }
                assertThat(ps.executeBatch()).hasSize(50);
            }
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO item (name) VALUES (?)", Statement.RETURN_GENERATED_KEYS)) {
                ps.setString(1, "keyed");
                ps.executeUpdate();
                try (ResultSet keys = ps.getGeneratedKeys()) {
                    assertThat(keys.next()).isTrue();
                    assertThat(keys.getLong("id")).isEqualTo(51L);
                }
            }
            try (Statement st = c.createStatement()) {
                st.addBatch("UPDATE item SET qty = qty + 1 WHERE id <= 10");
                st.addBatch("DELETE FROM item WHERE id = 11");
                assertThat(st.executeBatch()).containsExactly(10, 1);
                assertThat(st.getConnection()).isSameAs(c);
            }
            c.commit();
        }
        assertMirrored(50);
    }

    @Test
    void applicationErrorsArePlainJdbcAndReachNoNode() throws SQLException {
        try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.executeUpdate("INSERT INTO item (name) VALUES ('dup')");
            assertThatThrownBy(() -> st.executeUpdate("INSERT INTO item (name) VALUES ('dup')"))
                    .isInstanceOf(SQLException.class).extracting(e -> ((SQLException) e).getSQLState()).isEqualTo("23505");
            assertThatThrownBy(() -> st.executeQuery("SELECT no_such_column FROM item"))
                    .extracting(e -> ((SQLException) e).getSQLState()).isEqualTo("42703");
            c.setAutoCommit(false);
            st.executeUpdate("INSERT INTO item (name) VALUES ('in failed tx')");
            assertThatThrownBy(() -> st.executeUpdate("INSERT INTO item (name) VALUES ('dup')"))
                    .extracting(e -> ((SQLException) e).getSQLState()).isEqualTo("23505");
            c.rollback();
            // The connection is usable afterwards.
            st.executeUpdate("INSERT INTO item (name) VALUES ('fine')");
            c.commit();
        }
        assertMirrored(2);
    }

    /** As Django's check_constraints and fixture loading do: constraints checked in the middle of a transaction. */
    @Test
    void setConstraintsAllImmediateInTheMiddleOfATransactionWorksAsInPlainJdbc() throws SQLException {
        try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE part (id int PRIMARY KEY, item_id bigint REFERENCES item (id) DEFERRABLE INITIALLY DEFERRED)");
            c.setAutoCommit(false);
            // A write, then a check of the deferred constraints, then more writes.
            st.executeUpdate("INSERT INTO part VALUES (1, 1)");
            st.executeUpdate("INSERT INTO item (id, name) VALUES (1, 'a')");
            st.execute("SET CONSTRAINTS ALL IMMEDIATE");
            st.execute("SET CONSTRAINTS ALL DEFERRED");
            st.executeUpdate("INSERT INTO item (id, name) VALUES (2, 'b')");
            c.commit();
            // Constraints immediate before the first write, and left so until the commit.
            st.execute("SET CONSTRAINTS ALL IMMEDIATE");
            st.executeUpdate("INSERT INTO item (id, name) VALUES (3, 'c')");
            st.executeUpdate("INSERT INTO part VALUES (3, 3)");
            st.execute("SET CONSTRAINTS ALL IMMEDIATE");
            c.commit();
            assertMirrored(3);
            // The check reports a violation with its own SQLSTATE, and the rollback leaves nothing.
            st.executeUpdate("INSERT INTO item (id, name) VALUES (4, 'd')");
            st.executeUpdate("INSERT INTO part VALUES (4, 99)");
            assertThatThrownBy(() -> st.execute("SET CONSTRAINTS ALL IMMEDIATE")).isInstanceOf(SQLException.class)
                    .extracting(e -> ((SQLException) e).getSQLState()).isEqualTo("23503");
            c.rollback();
            c.setAutoCommit(true);
        }
        assertMirrored(3);
        try (Connection p = pair.principal(); Connection m = pair.mirror()) {
            assertThat(rows(m, "SELECT * FROM part ORDER BY id")).isEqualTo(rows(p, "SELECT * FROM part ORDER BY id")).hasSize(2);
            assertThat(value(p, "SELECT count(*) FROM lockstep.capture_guard")).isEqualTo(0L);
        }
    }

    @Test
    void copyThroughTheUnwrappedConnectionIsMirrored() throws Exception {
        try (Connection c = ds.getConnection()) {
            c.setAutoCommit(false);
            CopyManager copy = c.unwrap(PGConnection.class).getCopyAPI();
            StringBuilder data = new StringBuilder();
            for (int i = 0; i < 1000; i++) {
                data.append("copied").append(i).append('\t').append(i).append('\n');
            }
            assertThat(copy.copyIn("COPY item (name, qty) FROM STDIN", new StringReader(data.toString()))).isEqualTo(1000);
            c.commit();
        }
        assertMirrored(1000);
        try (Connection c = ds.getConnection()) {
            // In autocommit mode, COPY on the unwrapped connection commits when the connection closes.
            c.unwrap(PGConnection.class).getCopyAPI().copyIn("COPY item (name, qty) FROM STDIN", new StringReader("late\t1\n"));
        }
        assertMirrored(1001);
    }

    @Test
    void readOnlyTransactionsTouchOnlyThePrincipal() throws SQLException {
        try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.executeUpdate("INSERT INTO item (name) VALUES ('r')");
            long journalBefore = journalSize();
            c.setAutoCommit(false);
            try (ResultSet rs = st.executeQuery("SELECT count(*) FROM item")) {
                rs.next();
                assertThat(rs.getLong(1)).isEqualTo(1);
            }
            c.commit();
            assertThat(journalSize()).isEqualTo(journalBefore);
            assertThat(c.isWrapperFor(PGConnection.class)).isTrue();
        }
    }

    private long journalSize() throws SQLException {
        try (Connection m = pair.mirror()) {
            return (Long) value(m, "SELECT count(*) FROM lockstep.journal");
        }
    }

    @Test
    void tablesCreatedThroughTheDataSourceAreAttached() throws SQLException {
        assertThat(ds.partnership().attachedTables()).containsExactly("public.item");
        try (Connection m = pair.mirror()) {
            assertThat(rows(m, "SELECT table_name FROM lockstep.attached")).containsExactly(List.of("public.item"));
            assertThat((Long) value(m, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'lockstep_capture%'"
                    + " AND tgrelid = 'item'::regclass")).isEqualTo(4L);
        }
    }
}
