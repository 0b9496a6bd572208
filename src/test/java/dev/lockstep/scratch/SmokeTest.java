package dev.lockstep.scratch;

import dev.lockstep.*;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import org.junit.jupiter.api.Test;
import java.sql.*;

class SmokeTest {
  @Test void smoke() throws Exception {
    try (EmbeddedPostgres a = EmbeddedPostgres.builder().setServerConfig("max_prepared_transactions","20").start();
         EmbeddedPostgres b = EmbeddedPostgres.builder().setServerConfig("max_prepared_transactions","20").start()) {
      LockstepConfig cfg = LockstepConfig.builder().partnership("smoke")
        .principal(NodeConfig.of("a", a.getJdbcUrl("postgres","postgres"), "postgres", ""))
        .mirror(NodeConfig.of("b", b.getJdbcUrl("postgres","postgres"), "postgres", "")).build();
      try (LockstepDataSource ds = LockstepDataSource.start(cfg); Connection c = ds.getConnection()) {
        Statement st = c.createStatement();
        st.execute("CREATE TABLE acc (id int primary key, bal int not null, at timestamptz default now(), u uuid default gen_random_uuid(), s serial)");
        st.execute("INSERT INTO acc(id, bal) SELECT g, 100 FROM generate_series(1,10) g");
        c.setAutoCommit(false);
        st.execute("UPDATE acc SET bal = bal - 5 WHERE id = 1");
        st.execute("UPDATE acc SET bal = bal + 5 WHERE id = 2");
        c.commit();
        st.execute("UPDATE acc SET id = id + 100 WHERE id = 3");
        st.execute("DELETE FROM acc WHERE id = 4");
        c.commit();
        ResultSet rs = st.executeQuery("select count(*) from acc"); rs.next(); System.out.println("SMOKE count " + rs.getInt(1));
        c.commit();
        System.out.println("SMOKE " + ds.partnership().verify());
        System.out.println("SMOKE identical " + ds.partnership().verify().identical());
      }
      try (Connection m = b.getPostgresDatabase().getConnection()) {
        ResultSet rs = m.createStatement().executeQuery("select id, bal, s from acc order by id");
        while (rs.next()) System.out.println("SMOKE mirror " + rs.getInt(1) + " " + rs.getInt(2) + " " + rs.getInt(3));
        rs = m.createStatement().executeQuery("select epoch, seq, gid, changes from lockstep.journal order by seq");
        while (rs.next()) System.out.println("SMOKE journal " + rs.getLong(2) + " " + rs.getString(3) + " " + rs.getString(4));
      }
    }
  }
}
