package dev.lockstep.core;

import java.util.Locale;
import java.util.Set;

/**
 * Guesses from SQL text whether a statement is likely to change data. The guess only picks the
 * cheaper commit path; a wrong guess costs one round trip, never correctness, because the
 * principal's own capture decides what is mirrored.
 */
public final class StatementKind {

    private static final Set<String> READING = Set.of("select", "show", "values", "table", "explain", "fetch",
            "set", "reset", "begin", "start", "savepoint", "release", "declare", "close", "move", "listen");

    private StatementKind() {
    }

    /** Whether the statement probably writes (DML, DDL, COPY, function calls that may write). */
    public static boolean likelyWrites(String sql) {
        String word = firstWord(sql);
        if (word.isEmpty()) {
            return false;
        }
        if (word.equals("select") || word.equals("with")) {
            return sql.toLowerCase(Locale.ROOT).contains("nextval") || containsDmlKeyword(sql);
        }
        return !READING.contains(word);
    }

    /**
     * Whether the statement may create or use temporary objects. A transaction that touched them
     * cannot be prepared, so the commit must first learn whether anything mirrored changed.
     */
    public static boolean mentionsTemporary(String sql) {
        return sql.toLowerCase(Locale.ROOT).contains("temp");
    }

    private static boolean containsDmlKeyword(String sql) {
        String lower = sql.toLowerCase(Locale.ROOT);
        return lower.contains("insert") || lower.contains("update") || lower.contains("delete");
    }

    static String firstWord(String sql) {
        int i = skipSpaceAndComments(sql, 0);
        int start = i;
        while (i < sql.length() && Character.isLetter(sql.charAt(i))) {
            i++;
        }
        return sql.substring(start, i).toLowerCase(Locale.ROOT);
    }

    private static int skipSpaceAndComments(String sql, int from) {
        int i = from;
        while (i < sql.length()) {
            char c = sql.charAt(i);
            if (Character.isWhitespace(c) || c == '(') {
                i++;
            } else if (sql.startsWith("--", i)) {
                int end = sql.indexOf('\n', i);
                i = end < 0 ? sql.length() : end + 1;
            } else if (sql.startsWith("/*", i)) {
                int end = sql.indexOf("*/", i + 2);
                i = end < 0 ? sql.length() : end + 2;
            } else {
                break;
            }
        }
        return i;
    }
}
