package dev.lockstep.core;

/**
 * How far a principal's journal is from the limit on what it keeps while its mirror is away:
 * within it, near it (a warning, from {@link #WARNING_PERCENT} % of either bound), or past it
 * (the mirror is then marked for seeding and the journal trimmed, rather than the disk filling).
 */
public final class JournalLimit {

    /** The share of a bound at which the warning fires. */
    public static final int WARNING_PERCENT = 80;

    private JournalLimit() {
    }

    /** Where the journal stands. */
    public enum Level {
        /** Below the warning share of every bound. */
        WITHIN,
        /** At or above the warning share of a bound, below every bound. */
        NEAR,
        /** At or above a bound. */
        EXCEEDED
    }

    /**
     * Assesses the journal against the bounds.
     *
     * @param records         journal records held
     * @param oldestAgeMillis age of the oldest record
     * @param maxRecords      the bound on records (positive)
     * @param maxAgeMillis    the bound on age, or 0 for none
     * @return the level
     */
    public static Level assess(long records, long oldestAgeMillis, long maxRecords, long maxAgeMillis) {
        if (maxRecords <= 0 || maxAgeMillis < 0) {
            throw new IllegalArgumentException("journal limit: maxRecords must be positive and maxAgeMillis not negative, got "
                    + maxRecords + " and " + maxAgeMillis);
        }
        boolean ageBound = maxAgeMillis > 0 && records > 0;
        if (records >= maxRecords || (ageBound && oldestAgeMillis >= maxAgeMillis)) {
            return Level.EXCEEDED;
        }
        if (atWarning(records, maxRecords) || (ageBound && atWarning(oldestAgeMillis, maxAgeMillis))) {
            return Level.NEAR;
        }
        return Level.WITHIN;
    }

    private static boolean atWarning(long value, long bound) {
        // value / bound >= 80 %, without overflow for large bounds.
        return value >= bound / 100 * WARNING_PERCENT + bound % 100 * WARNING_PERCENT / 100;
    }
}
