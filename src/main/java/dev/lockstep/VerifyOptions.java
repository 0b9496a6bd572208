package dev.lockstep;

import java.time.Duration;
import java.util.Objects;

/**
 * How {@link Partnership#verify(VerifyOptions)} and {@link Partnership#repair(VerifyOptions)} run.
 *
 * @param maxKeysPerTable  how many differing keys a report names per table (at least 0); the
 *                         count of all differences is reported regardless, and repair fixes them all
 * @param statementTimeout the deadline of every statement on either node (a full scan of a large
 *                         table must fit in it); between 1 s and 24 h
 * @param lockTimeout      how long repair waits for the lock on a table (on the principal, writers
 *                         of that table wait behind it); between 10 ms and 10 min
 */
public record VerifyOptions(int maxKeysPerTable, Duration statementTimeout, Duration lockTimeout) {

    /** The defaults: 1000 keys per table, 10 minutes per statement, 5 seconds per lock wait. */
    public static VerifyOptions defaults() {
        return new VerifyOptions(1000, Duration.ofMinutes(10), Duration.ofSeconds(5));
    }

    /**
     * @throws IllegalArgumentException naming the setting, the rule and the value received
     */
    public VerifyOptions {
        if (maxKeysPerTable < 0) {
            throw invalid("maxKeysPerTable", "must be at least 0", maxKeysPerTable);
        }
        requireBetween("statementTimeout", statementTimeout, Duration.ofSeconds(1), Duration.ofHours(24));
        requireBetween("lockTimeout", lockTimeout, Duration.ofMillis(10), Duration.ofMinutes(10));
    }

    /** These options with another cap on the keys named per table. */
    public VerifyOptions withMaxKeysPerTable(int max) {
        return new VerifyOptions(max, statementTimeout, lockTimeout);
    }

    /** These options with another statement deadline. */
    public VerifyOptions withStatementTimeout(Duration timeout) {
        return new VerifyOptions(maxKeysPerTable, timeout, lockTimeout);
    }

    /** These options with another lock wait. */
    public VerifyOptions withLockTimeout(Duration timeout) {
        return new VerifyOptions(maxKeysPerTable, statementTimeout, timeout);
    }

    private static void requireBetween(String setting, Duration value, Duration min, Duration max) {
        if (value == null || value.compareTo(min) < 0 || value.compareTo(max) > 0) {
            throw invalid(setting, "must be between " + min + " and " + max, value);
        }
    }

    private static IllegalArgumentException invalid(String setting, String rule, Object value) {
        return new IllegalArgumentException("invalid verify option '" + setting + "': " + rule + "; got " + Objects.toString(value));
    }
}
