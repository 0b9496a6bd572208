package dev.lockstep;

import java.time.Duration;

/**
 * A principal's journal measured against the limit on what it keeps while its mirror is away.
 *
 * @param partnership  the partnership
 * @param principal    the principal node
 * @param mirror       the mirror node that is away
 * @param epoch        the principal's epoch
 * @param records      journal records held
 * @param oldestAge    age of the oldest record
 * @param limitRecords the configured {@code journalLimitRecords}
 * @param limitAge     the configured {@code journalLimitAge}, or null for none
 */
public record JournalUsage(String partnership, String principal, String mirror, long epoch, long records, Duration oldestAge,
                           long limitRecords, Duration limitAge) {
}
