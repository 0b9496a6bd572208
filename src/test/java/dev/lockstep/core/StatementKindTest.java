package dev.lockstep.core;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

class StatementKindTest {

    @Test
    void dmlDdlAndCopyLookLikeWrites() {
        for (String sql : new String[] {"INSERT INTO t VALUES (1)", "  update t set a = 1", "DELETE FROM t",
                "/* hint */ CREATE TABLE t (id int)", "-- c\nALTER TABLE t ADD c int", "COPY t FROM STDIN",
                "TRUNCATE t", "CALL p()", "DO $$ begin end $$", "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
                "SELECT nextval('s')", "MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE"}) {
            assertThat(StatementKind.likelyWrites(sql)).as(sql).isTrue();
        }
    }

    @Test
    void readsLookLikeReads() {
        for (String sql : new String[] {"SELECT 1", "select * from t where id = ?", "(SELECT 1)", "SHOW server_version",
                "VALUES (1)", "", "   ", "SET search_path = x", "EXPLAIN SELECT 1"}) {
            assertThat(StatementKind.likelyWrites(sql)).as(sql).isFalse();
        }
    }

    @Test
    void temporaryObjectsAreNoticed() {
        assertThat(StatementKind.mentionsTemporary("CREATE TEMP TABLE x (id int)")).isTrue();
        assertThat(StatementKind.mentionsTemporary("create temporary table x as select 1")).isTrue();
        assertThat(StatementKind.mentionsTemporary("INSERT INTO pg_temp.x VALUES (1)")).isTrue();
        assertThat(StatementKind.mentionsTemporary("INSERT INTO t VALUES (1)")).isFalse();
    }

    @Test
    void firstWordSkipsCommentsAndParentheses() {
        assertThat(StatementKind.firstWord("/* a */ -- b\n ((select 1))")).isEqualTo("select");
        assertThat(StatementKind.firstWord("/* unterminated")).isEmpty();
    }
}
