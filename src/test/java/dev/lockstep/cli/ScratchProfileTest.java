package dev.lockstep.cli;

import dev.lockstep.*;
import org.junit.jupiter.api.Test;
import java.sql.*;
import java.time.Duration;
import java.util.*;

class ScratchProfileTest {
    @Test void profile() throws Exception {
        try (EmbeddedNodes nodes = EmbeddedNodes.start(List.of("pa", "pb"), 100, Map.of("shared_preload_libraries", "pg_stat_statements", "pg_stat_statements.track", "all", "track_functions", "all"))) {
            nodes.onEachNode(List.of(0, 1), Duration.ofMinutes(1), (i, c) -> { TpcbWorkload.createAndLoad(c, 1); c.createStatement().execute("CREATE EXTENSION pg_stat_statements"); });
            LockstepConfig config = LockstepConfig.builder().partnership("p").principal(nodes.nodeConfig(0)).mirror(nodes.nodeConfig(1)).poolSize(1).build();
            try (LockstepDataSource ds = LockstepDataSource.start(config)) {
                for (String t : TpcbWorkload.TABLES) ds.partnership().attach(t);
                ClientRunner.Result r = new ClientRunner(1, i -> TpcbWorkload.client(ds.getConnection(), 1), 1).run(Duration.ofSeconds(3), 300, null);
                System.out.println("PROFILE tx=" + r.committed() + " p50=" + r.latencies().percentileMillis(50));
                for (int n = 0; n < 2; n++) try (Connection c = nodes.connect(n); Statement st = c.createStatement()) {
                    ResultSet rs = st.executeQuery("SELECT calls, round(total_exec_time::numeric,1), round(mean_exec_time::numeric,3), toplevel, left(regexp_replace(query, '\\s+', ' ', 'g'), 110) FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 25");
                    while (rs.next()) System.out.println("PROFILE node" + n + " " + rs.getLong(1) + " " + rs.getString(2) + " " + rs.getString(3) + " " + rs.getBoolean(4) + " " + rs.getString(5));
                    rs = st.executeQuery("SELECT funcname, calls, round(total_time::numeric,1), round(self_time::numeric,1) FROM pg_stat_user_functions ORDER BY total_time DESC LIMIT 15");
                    while (rs.next()) System.out.println("PROFILE fn node" + n + " " + rs.getString(1) + " " + rs.getLong(2) + " " + rs.getString(3) + " " + rs.getString(4));
                }
            }
        }
    }
}
