package dev.lockstep.cli;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * The options of one subcommand, parsed from {@code --name value} or {@code --name=value} pairs.
 * Every option takes a value; an option the command does not know, a missing value, a
 * repeated option or a stray positional argument is a {@link UsageException} naming it.
 */
public final class Args {

    private final String command;
    private final Map<String, String> values;

    private Args(String command, Map<String, String> values) {
        this.command = command;
        this.values = values;
    }

    /**
     * Parses the arguments that follow the subcommand name.
     *
     * @param command the subcommand, for messages
     * @param argv    the arguments after it
     * @param known   the option names (without {@code --}) the subcommand accepts
     * @return the parsed options
     * @throws UsageException naming the offending argument
     */
    /** Options that take no value: present means on. */
    static final Set<String> FLAGS = Set.of("json", "allow-data-loss", "repair");

    public static Args parse(String command, List<String> argv, Set<String> known) {
        Map<String, String> values = new LinkedHashMap<>();
        for (int i = 0; i < argv.size(); i++) {
            String arg = argv.get(i);
            if (!arg.startsWith("--") || arg.length() == 2) {
                throw new UsageException(command + ": unexpected argument '" + arg + "'; options look like --name value");
            }
            String name = arg.substring(2);
            String value = null;
            int eq = name.indexOf('=');
            if (eq >= 0) {
                value = name.substring(eq + 1);
                name = name.substring(0, eq);
            }
            if (!known.contains(name)) {
                throw new UsageException(command + ": unknown option '--" + name + "'; known options: " + describeOptions(known));
            }
            if (value == null && FLAGS.contains(name)) {
                value = "true";
            }
            if (value == null) {
                if (i + 1 >= argv.size() || argv.get(i + 1).startsWith("--")) {
                    throw new UsageException(command + ": option '--" + name + "' needs a value");
                }
                value = argv.get(++i);
            }
            if (values.putIfAbsent(name, value) != null) {
                throw new UsageException(command + ": option '--" + name + "' is given twice");
            }
        }
        return new Args(command, Collections.unmodifiableMap(values));
    }

    /** Whether the option was given. */
    public boolean has(String name) {
        return values.containsKey(name);
    }

    /** The option's value, or {@code fallback} when it was not given. */
    public String string(String name, String fallback) {
        return values.getOrDefault(name, fallback);
    }

    /**
     * A whole number within bounds.
     *
     * @throws UsageException when it is not a number or out of bounds
     */
    public int integer(String name, int fallback, int min, int max) {
        String v = values.get(name);
        return v == null ? fallback : parseInt(name, v, min, max);
    }

    /**
     * A comma-separated list of whole numbers within bounds, such as {@code 1,8,32}.
     *
     * @throws UsageException when an element is not a number or out of bounds
     */
    public List<Integer> integers(String name, List<Integer> fallback, int min, int max) {
        String v = values.get(name);
        if (v == null) {
            return fallback;
        }
        List<Integer> list = new ArrayList<>();
        for (String part : v.split(",", -1)) {
            list.add(parseInt(name, part.trim(), min, max));
        }
        return List.copyOf(list);
    }

    /**
     * One of a fixed set of words (case-insensitive); returned in lower case.
     *
     * @throws UsageException when the value is not one of them
     */
    public String choice(String name, String fallback, Set<String> allowed) {
        String v = values.get(name);
        if (v == null) {
            return fallback;
        }
        String lower = v.toLowerCase(Locale.ROOT);
        if (!allowed.contains(lower)) {
            throw new UsageException(command + ": option '--" + name + "' must be one of " + describe(allowed) + ", got '" + v + "'");
        }
        return lower;
    }

    private int parseInt(String name, String v, int min, int max) {
        try {
            int n = Integer.parseInt(v);
            if (n < min || n > max) {
                throw new UsageException(command + ": option '--" + name + "' must be between " + min + " and " + max + ", got " + n);
            }
            return n;
        } catch (NumberFormatException e) {
            throw new UsageException(command + ": option '--" + name + "' needs a whole number, got '" + v + "'");
        }
    }

    private static String describeOptions(Set<String> names) {
        return String.join(", ", new TreeSet<>(names).stream().map(n -> "--" + n).toList());
    }

    private static String describe(Set<String> words) {
        return String.join("|", new TreeSet<>(words));
    }

    /** A command line that cannot be run; its message says why and names the argument. */
    public static final class UsageException extends IllegalArgumentException {
        /** @param message what is wrong, naming the argument */
        public UsageException(String message) {
            super(message);
        }
    }
}
