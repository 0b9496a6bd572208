package dev.lockstep;

import java.time.OffsetDateTime;

/**
 * A transaction a returning node held that the principal lacked (it committed there alone
 * before a forced service), as reported before the node was re-seeded: its journal record, row
 * images included, with its original position.
 *
 * @param node           the node that held it
 * @param epoch          the epoch it committed in
 * @param seq            its position within that epoch
 * @param gid            its global transaction id
 * @param origin         the node that was principal when it committed
 * @param committedAt    when it committed there
 * @param changes        its change set as JSON: {@code {"e":[entries],"s":{sequence positions}}}, each
 *                       entry with its kind ({@code k}), table ({@code t}) and new ({@code n}) or
 *                       old ({@code o}) row images, or both in turn ({@code r})
 * @param principal      the principal that lacked it
 * @param principalEpoch the principal's epoch when it was found
 * @param detectedAt     when it was found
 */
public record DivergentTransaction(String node, long epoch, long seq, String gid, String origin, OffsetDateTime committedAt,
                                   String changes, String principal, long principalEpoch, OffsetDateTime detectedAt) {
}
