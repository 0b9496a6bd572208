package dev.lockstep.core;

import java.util.Objects;
import java.util.regex.Pattern;

/**
 * The global transaction id under which Lockstep prepares a transaction on both nodes. It names
 * the partnership, the epoch and the coordinator, so in-doubt resolution can tell Lockstep's
 * prepared transactions from anyone else's and tell who owns them.
 *
 * @param partnership partnership name
 * @param epoch       epoch the coordinator acted in
 * @param coordinator id of the coordinator that prepared it
 * @param number      per-coordinator sequence number
 */
public record Gid(String partnership, long epoch, String coordinator, long number) {

    private static final String PREFIX = "lockstep";
    private static final Pattern NAME = Pattern.compile("[a-z0-9][a-z0-9_-]{0,62}");

    public Gid {
        requireName("partnership", partnership);
        requireName("coordinator", coordinator);
        if (epoch < 1) {
            throw new IllegalArgumentException("epoch must be at least 1, got " + epoch);
        }
        if (number < 0) {
            throw new IllegalArgumentException("number must not be negative, got " + number);
        }
    }

    /** Whether {@code name} may be used as a partnership or coordinator name. */
    public static boolean isValidName(String name) {
        return name != null && NAME.matcher(name).matches();
    }

    private static void requireName(String what, String value) {
        if (!isValidName(value)) {
            throw new IllegalArgumentException(what + " must match " + NAME.pattern() + ", got " + value);
        }
    }

    /** The prefix every gid of {@code partnership} starts with. */
    public static String prefixOf(String partnership) {
        return PREFIX + ":" + partnership + ":";
    }

    /** The text form used in {@code PREPARE TRANSACTION}. */
    @Override
    public String toString() {
        return prefixOf(partnership) + epoch + ":" + coordinator + ":" + number;
    }

    /**
     * Parses the text form; returns null for a gid that is not Lockstep's.
     *
     * @param text a gid as listed in {@code pg_prepared_xacts}
     * @return the parsed gid, or null when it was not made by Lockstep
     */
    public static Gid parseOrNull(String text) {
        Objects.requireNonNull(text, "text");
        String[] parts = text.split(":", -1);
        if (parts.length != 5 || !PREFIX.equals(parts[0])) {
            return null;
        }
        try {
            return new Gid(parts[1], Long.parseLong(parts[2]), parts[3], Long.parseLong(parts[4]));
        } catch (IllegalArgumentException notOurs) {
            return null;
        }
    }
}
