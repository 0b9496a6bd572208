package dev.lockstep.it;

import dev.lockstep.CaptureMode;
import dev.lockstep.LockstepDataSource;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.sql.Connection;
import java.sql.Statement;

import static dev.lockstep.it.TwoNodes.rows;
import static dev.lockstep.it.TwoNodes.value;
import static org.assertj.core.api.Assertions.assertThat;

/** Every kind of row change is captured and applied, in both capture modes. */
class CaptureTest extends OnTwoNodes {

    @ParameterizedTest
    @EnumSource(CaptureMode.class)
    void insertsUpdatesDeletesTruncatesAndKeyChangesReachTheMirror(CaptureMode mode) throws Exception {
        TwoNodes.Pair pair = nodes.newPair("capture");
        try (LockstepDataSource ds = pair.start(); Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE parent (id int PRIMARY KEY, name text)");
            st.execute("CREATE TABLE child (a int, b text, parent_id int REFERENCES parent ON UPDATE CASCADE ON DELETE CASCADE, payload jsonb, data bytea,"
                    + " tags text[], score float8, PRIMARY KEY (a, b))");
            ds.partnership().attach("parent", mode);
            ds.partnership().attach("child", mode);
            c.setAutoCommit(false);
            st.execute("INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 50) g");
            st.execute("INSERT INTO child SELECT g, 'k' || g, g, jsonb_build_object('g', g, 'nested', jsonb_build_array(g, 'x')),"
                    + " decode(md5(g::text), 'hex'), ARRAY['a', 'b' || g], g / 3.0 FROM generate_series(1, 50) g");
            c.commit();
            st.execute("UPDATE parent SET name = name || '!' WHERE id % 2 = 0");
            st.execute("UPDATE child SET score = 'NaN' WHERE a = 1");
            st.execute("UPDATE child SET score = 'Infinity', payload = 'null' WHERE a = 2");
            st.execute("UPDATE parent SET id = id + 1000 WHERE id > 45");
            st.execute("UPDATE child SET a = 50 - a WHERE a <= 10");
            st.execute("DELETE FROM child WHERE a BETWEEN 20 AND 25");
            st.execute("DELETE FROM parent WHERE id BETWEEN 30 AND 32");
            st.execute("INSERT INTO parent VALUES (7, 'upserted') ON CONFLICT (id) DO UPDATE SET name = excluded.name");
            st.execute("INSERT INTO parent VALUES (500, 'new') ON CONFLICT (id) DO UPDATE SET name = excluded.name");
            c.commit();
            assertIdentical(pair);
            st.execute("TRUNCATE child");
            st.execute("INSERT INTO child (a, b) VALUES (1, 'after truncate')");
            c.commit();
            assertIdentical(pair);
            st.execute("TRUNCATE parent CASCADE");
            c.commit();
            assertIdentical(pair);
            assertThat(ds.partnership().verify().identical()).isTrue();
        }
        try (Connection m = pair.mirror()) {
            assertThat(value(m, "SELECT count(*) FROM child")).isEqualTo(0L);
            assertThat(value(m, "SELECT capture_mode FROM lockstep.attached WHERE table_name = 'public.child'"))
                    .isEqualTo(mode.name().toLowerCase(java.util.Locale.ROOT));
        }
    }

    private static void assertIdentical(TwoNodes.Pair pair) throws Exception {
        try (Connection p = pair.principal(); Connection m = pair.mirror()) {
            for (String table : new String[] {"parent", "child"}) {
                // Text comparison keeps NaN, Infinity and bytea exact.
                String sql = "SELECT t::text FROM " + table + " t ORDER BY 1";
                assertThat(rows(m, sql)).as(table).isEqualTo(rows(p, sql));
            }
        }
    }
}
