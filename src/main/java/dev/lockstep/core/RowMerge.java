package dev.lockstep.core;

import java.util.Comparator;
import java.util.Iterator;
import java.util.Objects;
import java.util.function.Consumer;

/**
 * Compares a table on two nodes by merging two streams of (key, row hash), each sorted by key in
 * {@link #KEY_ORDER}: memory stays bounded whatever the table's size.
 */
public final class RowMerge {

    /**
     * The order both streams must follow: by Unicode code point, which is the order of the keys'
     * UTF-8 bytes (PostgreSQL's {@code ORDER BY convert_to(key, 'UTF8')}).
     */
    public static final Comparator<String> KEY_ORDER = RowMerge::compareCodePoints;

    /**
     * One row as a node reports it.
     *
     * @param key  primary key text
     * @param hash hash of the row's contents
     */
    public record KeyedHash(String key, String hash) {
        public KeyedHash {
            Objects.requireNonNull(key, "key");
            Objects.requireNonNull(hash, "hash");
        }
    }

    private RowMerge() {
    }

    /**
     * Merges the principal's and the mirror's rows and reports each differing key, in key order.
     *
     * @param principal the principal's rows, sorted by key in {@link #KEY_ORDER}
     * @param mirror    the mirror's rows, likewise
     * @param sink      told of each difference
     * @return how many differences there were
     * @throws IllegalStateException when a stream is not strictly ascending (the order the nodes
     *                               produced does not match {@link #KEY_ORDER})
     */
    public static long merge(Iterator<KeyedHash> principal, Iterator<KeyedHash> mirror, Consumer<RowDifference> sink) {
        Ordered p = new Ordered(principal, "principal");
        Ordered m = new Ordered(mirror, "mirror");
        long differences = 0;
        while (p.current != null || m.current != null) {
            int c = p.current == null ? 1 : m.current == null ? -1 : KEY_ORDER.compare(p.current.key(), m.current.key());
            if (c < 0) {
                sink.accept(new RowDifference(p.current.key(), RowDifference.Kind.MISSING_ON_MIRROR));
                differences++;
                p.advance();
            } else if (c > 0) {
                sink.accept(new RowDifference(m.current.key(), RowDifference.Kind.EXTRA_ON_MIRROR));
                differences++;
                m.advance();
            } else {
                if (!p.current.hash().equals(m.current.hash())) {
                    sink.accept(new RowDifference(p.current.key(), RowDifference.Kind.CHANGED));
                    differences++;
                }
                p.advance();
                m.advance();
            }
        }
        return differences;
    }

    /** Compares by code point (not by UTF-16 unit, where surrogates sort below U+E000-U+FFFF). */
    static int compareCodePoints(String a, String b) {
        int i = 0;
        int j = 0;
        while (i < a.length() && j < b.length()) {
            int ca = a.codePointAt(i);
            int cb = b.codePointAt(j);
            if (ca != cb) {
                return Integer.compare(ca, cb);
            }
            i += Character.charCount(ca);
            j += Character.charCount(cb);
        }
        return Integer.compare(a.length() - i, b.length() - j);
    }

    /** A stream's current row, checked to ascend strictly. */
    private static final class Ordered {
        private final Iterator<KeyedHash> rows;
        private final String node;
        private KeyedHash current;

        Ordered(Iterator<KeyedHash> rows, String node) {
            this.rows = rows;
            this.node = node;
            this.current = rows.hasNext() ? rows.next() : null;
        }

        void advance() {
            KeyedHash previous = current;
            current = rows.hasNext() ? rows.next() : null;
            if (current != null && KEY_ORDER.compare(previous.key(), current.key()) >= 0) {
                throw new IllegalStateException("the " + node + "'s rows are not in ascending key order: "
                        + previous.key() + " came before " + current.key());
            }
        }
    }
}
