package dev.lockstep.it;

import dev.lockstep.LockstepDriver;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.Writer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.Driver;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;

import static dev.lockstep.it.TwoNodes.value;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Tools that only take a JDBC URL reach a partnership through jdbc:lockstep:. */
class DriverTest extends OnTwoNodes {

    @Test
    void aJdbcUrlNamingAPartnershipFileGivesMirroredConnections(@TempDir Path dir) throws Exception {
        TwoNodes.Pair pair = nodes.newPair("driver");
        Properties p = new Properties();
        p.setProperty("partnership", "driver");
        p.setProperty("principal.name", "node-a");
        p.setProperty("principal.url", nodes.a().jdbcUrl(pair.dbA()));
        p.setProperty("principal.user", nodes.a().user());
        p.setProperty("principal.password", nodes.a().password());
        p.setProperty("mirror.name", "node-b");
        p.setProperty("mirror.url", nodes.b().jdbcUrl(pair.dbB()));
        p.setProperty("mirror.user", nodes.b().user());
        p.setProperty("mirror.password", nodes.b().password());
        Path file = dir.resolve("driver.properties");
        try (Writer w = Files.newBufferedWriter(file)) {
            p.store(w, null);
        }
        String url = LockstepDriver.PREFIX + file;
        Driver driver = DriverManager.getDriver(url);
        assertThat(driver).isInstanceOf(LockstepDriver.class);
        try (Connection c = DriverManager.getConnection(url); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE t (id int PRIMARY KEY)");
            st.executeUpdate("INSERT INTO t VALUES (1), (2)");
        }
        try (Connection c = DriverManager.getConnection(url); Statement st = c.createStatement()) {
            st.executeUpdate("INSERT INTO t VALUES (3)");
        } finally {
            ((LockstepDriver) driver).closeAll();
        }
        try (Connection m = pair.mirror()) {
            assertThat(value(m, "SELECT count(*) FROM t")).isEqualTo(3L);
        }
    }

    @Test
    void aMissingOrInvalidFileIsNamed(@TempDir Path dir) throws Exception {
        Path missing = dir.resolve("nope.properties");
        assertThatThrownBy(() -> DriverManager.getConnection(LockstepDriver.PREFIX + missing))
                .isInstanceOf(SQLException.class).hasMessageContaining("nope.properties")
                .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("08001"));
        Path invalid = dir.resolve("invalid.properties");
        Files.writeString(invalid, "partnership=x\n");
        assertThatThrownBy(() -> DriverManager.getConnection(LockstepDriver.PREFIX + invalid))
                .isInstanceOf(SQLException.class).hasMessageContaining("'principal.name'")
                .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("22023"));
    }
}
