package dev.lockstep;

import dev.lockstep.core.MirroringState;
import dev.lockstep.core.OperatingMode;
import dev.lockstep.core.PartnerHealth;
import dev.lockstep.core.QuorumRules;

/**
 * A coordinator's view of its partnership, as Lync's {@code Get-CsDatabaseMirrorState} shows it.
 * Without a witness the state is not tracked (always SYNCHRONIZED as configured) and health is
 * not probed (null).
 *
 * @param partnership            name
 * @param epoch                  the epoch this coordinator commits in
 * @param principal              the principal node
 * @param mirror                 the mirror node
 * @param state                  mirroring state, as the witness records it
 * @param mode                   operating mode
 * @param principalHealth        the principal as this coordinator's failure detector sees it
 * @param mirrorHealth           the mirror, likewise
 * @param witnessHealth          the witness, likewise; null without a witness
 * @param action                 what the quorum rules say now; null without a witness. {@code STOP_WRITES}
 *                               also while the principal lacks commits its mirror holds (it came back as
 *                               an older copy: event {@code PrincipalLostCommits})
 * @param automaticFailoverArmed whether losing the principal now would promote the mirror (not while the
 *                               mirror came back as another incarnation that is not compared yet)
 */
public record PartnershipStatus(String partnership, long epoch, String principal, String mirror, MirroringState state,
                                OperatingMode mode, PartnerHealth principalHealth, PartnerHealth mirrorHealth,
                                PartnerHealth witnessHealth, QuorumRules.Action action, boolean automaticFailoverArmed) {
}
