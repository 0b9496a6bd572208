package dev.lockstep;

/**
 * Told when a principal's journal, kept for a mirror that is away, nears or passes its limit
 * ({@code journalLimitRecords}, {@code journalLimitAge}). Called on a Lockstep background thread
 * of the coordinator that checked, once per episode (until the mirror is SYNCHRONIZED again), the warning always before the limit;
 * keep it quick and let it not throw. Lockstep logs both events at WARN itself.
 */
public interface JournalRetentionListener {

    /** A listener that does nothing. */
    JournalRetentionListener NONE = new JournalRetentionListener() {
    };

    /**
     * The journal reached 80 % of a bound.
     *
     * @param usage the journal as measured
     */
    default void nearLimit(JournalUsage usage) {
    }

    /**
     * The journal reached a bound: the mirror is marked for seeding (at the principal and the
     * witness) and the journal is trimmed; when the mirror returns it is seeded, not caught up.
     *
     * @param usage the journal as measured, before trimming
     */
    default void limitExceeded(JournalUsage usage) {
    }
}
