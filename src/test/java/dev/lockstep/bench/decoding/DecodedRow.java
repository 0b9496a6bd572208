package dev.lockstep.bench.decoding;

import java.util.ArrayList;
import java.util.List;

/**
 * One change as test_decoding prints it: {@code table public.t: UPDATE: a[integer]:1 b[text]:'x'}.
 * Values are kept as text (null for SQL NULL); the mirror's statements let the server type them.
 */
record DecodedRow(String table, String kind, List<String> columns, List<String> values) {

    static DecodedRow parse(String line) {
        int nameEnd = line.indexOf(": ", "table ".length());
        String table = line.substring("table ".length(), nameEnd);
        int kindEnd = line.indexOf(": ", nameEnd + 2);
        if (kindEnd < 0) {
            throw new IllegalArgumentException("decoding prototype: no columns in " + line);
        }
        String kind = line.substring(nameEnd + 2, kindEnd);
        List<String> columns = new ArrayList<>();
        List<String> values = new ArrayList<>();
        int i = kindEnd + 2;
        while (i < line.length()) {
            int typeStart = line.indexOf('[', i);
            int valueStart = line.indexOf("]:", typeStart) + 2;
            columns.add(line.substring(i, typeStart));
            i = line.charAt(valueStart) == '\'' ? quoted(line, valueStart + 1, values) : bare(line, valueStart, values);
        }
        return new DecodedRow(table, kind, columns, values);
    }

    /** Reads a quoted value ({@code ''} stands for one quote); returns where the next column starts. */
    private static int quoted(String line, int from, List<String> values) {
        StringBuilder value = new StringBuilder();
        int j = from;
        while (true) {
            char c = line.charAt(j);
            if (c == '\'') {
                if (j + 1 < line.length() && line.charAt(j + 1) == '\'') {
                    value.append('\'');
                    j += 2;
                    continue;
                }
                values.add(value.toString());
                return j + 2;
            }
            value.append(c);
            j++;
        }
    }

    private static int bare(String line, int from, List<String> values) {
        int end = line.indexOf(' ', from);
        end = end < 0 ? line.length() : end;
        String raw = line.substring(from, end);
        values.add(raw.equals("null") ? null : raw);
        return end + 1;
    }
}
