package dev.lockstep;

import java.util.List;

/**
 * The result of comparing the mirrored tables and sequences of both nodes.
 *
 * @param tables    per-table checksums on both nodes
 * @param sequences per-sequence positions on both nodes
 */
public record VerifyReport(List<TableChecksum> tables, List<SequencePosition> sequences) {

    /**
     * One table on both nodes.
     *
     * @param table           schema-qualified table name
     * @param principalRows   rows on the principal
     * @param principalDigest order-independent digest on the principal
     * @param mirrorRows      rows on the mirror
     * @param mirrorDigest    digest on the mirror
     */
    public record TableChecksum(String table, long principalRows, String principalDigest, long mirrorRows, String mirrorDigest) {
        /** Whether both nodes hold the same rows. */
        public boolean identical() {
            return principalRows == mirrorRows && principalDigest.equals(mirrorDigest);
        }
    }

    /**
     * One sequence on both nodes; the mirror may be ahead, never behind (invariant I3).
     *
     * @param sequence  schema-qualified sequence name
     * @param principal highest value handed out on the principal, or null for none
     * @param mirror    position on the mirror, or null for none
     */
    public record SequencePosition(String sequence, Long principal, Long mirror) {
        /** Whether the mirror is at or beyond the principal. */
        public boolean mirrorNotBehind() {
            return principal == null || (mirror != null && mirror >= principal);
        }
    }

    /** Whether every table is identical and no mirror sequence is behind. */
    public boolean identical() {
        return tables.stream().allMatch(TableChecksum::identical) && sequences.stream().allMatch(SequencePosition::mirrorNotBehind);
    }
}
