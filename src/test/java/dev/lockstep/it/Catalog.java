package dev.lockstep.it;

import java.sql.Connection;
import java.sql.SQLException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** A dump of the user-visible catalog of one database, for comparing the schemas of two nodes. */
final class Catalog {

    private static final Map<String, String> QUERIES = new LinkedHashMap<>();

    static {
        QUERIES.put("columns", "SELECT table_name, column_name, ordinal_position, data_type, column_default, is_nullable"
                + " FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 3");
        QUERIES.put("indexes", "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1");
        QUERIES.put("views", "SELECT viewname, definition FROM pg_views WHERE schemaname = 'public' ORDER BY 1");
        QUERIES.put("functions", "SELECT proname, pg_get_functiondef(oid) FROM pg_proc"
                + " WHERE pronamespace = 'public'::regnamespace ORDER BY 1");
        QUERIES.put("sequences", "SELECT sequencename, start_value, increment_by FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1");
        QUERIES.put("constraints", "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
                + " WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2");
        QUERIES.put("triggers", "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1, 2");
    }

    private Catalog() {
    }

    static Map<String, List<List<Object>>> dump(Connection c) throws SQLException {
        Map<String, List<List<Object>>> dump = new LinkedHashMap<>();
        for (Map.Entry<String, String> q : QUERIES.entrySet()) {
            dump.put(q.getKey(), TwoNodes.rows(c, q.getValue()));
        }
        return dump;
    }
}
