package dev.lockstep.it;

import dev.lockstep.LockstepDataSource;
import org.flywaydb.core.Flyway;
import org.junit.jupiter.api.Test;

import java.sql.Connection;
import java.sql.Statement;
import java.util.List;
import java.util.Map;

import static dev.lockstep.it.TwoNodes.rows;
import static org.assertj.core.api.Assertions.assertThat;

/** DDL run through the data source is replayed on the mirror in the same two-phase commit. */
class DdlMigrationTest extends OnTwoNodes {

    private static void assertIdenticalSchemasAndData(TwoNodes.Pair pair, LockstepDataSource ds, List<String> tables) throws Exception {
        try (Connection p = pair.principal(); Connection m = pair.mirror()) {
            Map<String, List<List<Object>>> principal = Catalog.dump(p);
            assertThat(principal.get("columns")).isNotEmpty();
            assertThat(Catalog.dump(m)).isEqualTo(principal);
            for (String table : tables) {
                assertThat(rows(m, "SELECT * FROM " + table + " ORDER BY 1")).as(table)
                        .isEqualTo(rows(p, "SELECT * FROM " + table + " ORDER BY 1"));
            }
        }
        assertThat(ds.partnership().verify().identical()).isTrue();
    }

    @Test
    void aMigrationOfSeveralStepsLeavesIdenticalSchemasAndData() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("ddl");
        try (LockstepDataSource ds = pair.start(); Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            c.setAutoCommit(false);
            st.execute("CREATE TABLE product (id int PRIMARY KEY, name text NOT NULL, legacy text)");
            st.execute("INSERT INTO product SELECT g, 'p' || g, 'old' FROM generate_series(1, 100) g");
            c.commit();
            st.execute("ALTER TABLE product ADD COLUMN price numeric(10, 2) NOT NULL DEFAULT 9.99");
            st.execute("CREATE INDEX product_name ON product (name)");
            st.execute("CREATE VIEW cheap_product AS SELECT id, name FROM product WHERE price < 10");
            st.execute("ALTER TABLE product DROP COLUMN legacy");
            st.execute("UPDATE product SET price = price * 2 WHERE id % 2 = 0");
            c.commit();
            st.execute("CREATE SEQUENCE ticket_seq");
            st.execute("CREATE TABLE ticket (id bigint PRIMARY KEY DEFAULT nextval('ticket_seq'), product_id int REFERENCES product)");
            st.execute("CREATE FUNCTION product_total() RETURNS numeric LANGUAGE sql AS $$ SELECT sum(price) FROM product $$");
            st.execute("INSERT INTO ticket (product_id) SELECT id FROM product WHERE id <= 10");
            st.execute("ALTER TABLE product RENAME COLUMN name TO title");
            c.commit();
            st.execute("CREATE TABLE obsolete (id int PRIMARY KEY)");
            st.execute("CREATE VIEW obsolete_view AS SELECT 1 AS one");
            st.execute("CREATE FUNCTION obsolete_fn() RETURNS int LANGUAGE sql AS 'SELECT 1'");
            c.commit();
            st.execute("DROP TABLE obsolete");
            st.execute("DROP VIEW obsolete_view");
            st.execute("DROP FUNCTION obsolete_fn()");
            c.commit();
            assertThat(ds.partnership().attachedTables()).containsExactly("public.product", "public.ticket");
            assertIdenticalSchemasAndData(pair, ds, List.of("product", "ticket"));
        }
    }

    /**
     * Sequences a transaction's capture triggers reported when it first wrote a table can change
     * later in the same transaction: a default that starts drawing from a new sequence must still
     * move the mirror's sequence (I3), and a table dropped after being written must not fail the
     * commit on its vanished sequence.
     */
    @Test
    void sequencesChangedOrDroppedAfterAWriteInTheSameTransaction() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("ddlseq");
        try (LockstepDataSource ds = pair.start(); Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE t (id int PRIMARY KEY, n bigint)");
            st.execute("CREATE TABLE gone (id serial PRIMARY KEY, v int)");
            c.setAutoCommit(false);
            st.executeUpdate("INSERT INTO t VALUES (1, 0)");
            st.execute("CREATE SEQUENCE t_n");
            st.execute("ALTER TABLE t ALTER COLUMN n SET DEFAULT nextval('t_n')");
            st.executeUpdate("INSERT INTO t (id) VALUES (2), (3), (4)");
            c.commit();
            st.executeUpdate("INSERT INTO gone (v) VALUES (1)");
            st.execute("DROP TABLE gone");
            c.commit();
        }
        try (Connection p = pair.principal(); Connection m = pair.mirror()) {
            for (Connection node : new Connection[] {p, m}) {
                assertThat(rows(node, "SELECT pg_sequence_last_value('t_n')")).containsExactly(List.of(3L));
                assertThat(rows(node, "SELECT to_regclass('gone')")).containsExactly(java.util.Collections.singletonList(null));
            }
            assertThat(rows(m, "SELECT * FROM t ORDER BY id")).isEqualTo(rows(p, "SELECT * FROM t ORDER BY id"));
        }
    }

    @Test
    void aRolledBackMigrationLeavesNothingOnEitherNode() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("ddl");
        try (LockstepDataSource ds = pair.start(); Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            c.setAutoCommit(false);
            st.execute("CREATE TABLE scratch (id int PRIMARY KEY)");
            st.execute("INSERT INTO scratch VALUES (1)");
            c.rollback();
            assertThat(ds.partnership().attachedTables()).isEmpty();
        }
        try (Connection p = pair.principal(); Connection m = pair.mirror()) {
            assertThat(rows(p, "SELECT to_regclass('scratch')")).containsExactly(java.util.Collections.singletonList(null));
            assertThat(rows(m, "SELECT to_regclass('scratch')")).containsExactly(java.util.Collections.singletonList(null));
        }
    }

    @Test
    void flywayMigratesThroughTheDataSourceUnchanged() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("flyway");
        try (LockstepDataSource ds = pair.start()) {
            var result = Flyway.configure().dataSource(ds).locations("classpath:db/migration").load().migrate();
            assertThat(result.migrationsExecuted).isEqualTo(3);
            assertThat(ds.partnership().attachedTables())
                    .containsExactlyInAnyOrder("public.customer", "public.invoice", "public.flyway_schema_history");
            assertIdenticalSchemasAndData(pair, ds, List.of("customer", "invoice", "flyway_schema_history"));
        }
    }
}
