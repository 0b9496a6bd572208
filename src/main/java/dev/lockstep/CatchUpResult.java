package dev.lockstep;

import dev.lockstep.core.PartnershipRecord;

/**
 * What one catch-up of a mirror did.
 *
 * @param replayed      journal records applied to the mirror
 * @param passes        replay passes, the cut-over's included
 * @param cutOverMillis how long new writers were held at the principal during the cut-over
 * @param replayMillis  how long the replay took, from the first pass to the end of the cut-over
 * @param record        the partnership afterwards (SYNCHRONIZED)
 * @param seeded        whether the mirror was seeded with a snapshot copy of the principal first
 *                      (a new or diverged mirror, or one whose journal limit was exceeded)
 * @param longestStepMillis the longest any held step of the cut-over (the last included) held
 *                      new writers once it had them held: about 100 ms and one chunk of 25
 *                      records, doubled for each time steps had to grow (at most 1.6 s)
 */
public record CatchUpResult(int replayed, int passes, double cutOverMillis, double replayMillis, PartnershipRecord record,
                            boolean seeded, double longestStepMillis) {
}
