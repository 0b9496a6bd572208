package dev.lockstep;

import dev.lockstep.core.RowDifference;

import java.util.List;
import java.util.Optional;

/**
 * The result of comparing the mirrored tables, their definitions and their sequences on both nodes.
 *
 * @param tables    per-table checksums on both nodes, with the differing keys of a table that differs;
 *                  tables attached on the principal and present on both nodes
 * @param sequences per-sequence positions on both nodes
 * @param schema    differences in the tables' definitions (columns, constraints, indexes, triggers,
 *                  attachment, a table missing on one node); empty when the definitions agree
 */
public record VerifyReport(List<TableChecksum> tables, List<SequencePosition> sequences, List<SchemaDifference> schema) {

    public VerifyReport {
        tables = List.copyOf(tables);
        sequences = List.copyOf(sequences);
        schema = List.copyOf(schema);
    }

    /** A report of tables and sequences with no schema differences. */
    public VerifyReport(List<TableChecksum> tables, List<SequencePosition> sequences) {
        this(tables, sequences, List.of());
    }

    /**
     * One table on both nodes. The checksums cover the columns both nodes have (a column on one
     * node only is a {@link SchemaDifference}).
     *
     * @param table           schema-qualified table name
     * @param principalRows   rows on the principal
     * @param principalDigest order-independent digest on the principal
     * @param mirrorRows      rows on the mirror
     * @param mirrorDigest    digest on the mirror
     * @param differences     the differing keys in key order, at most {@link VerifyOptions#maxKeysPerTable()}
     * @param differenceCount how many keys differ in all; more than {@code differences.size()} when capped
     */
    public record TableChecksum(String table, long principalRows, String principalDigest, long mirrorRows, String mirrorDigest,
                                List<RowDifference> differences, long differenceCount) {

        public TableChecksum {
            differences = List.copyOf(differences);
        }

        /** A checksum without differing keys (the digests agree, or keys were not compared). */
        public TableChecksum(String table, long principalRows, String principalDigest, long mirrorRows, String mirrorDigest) {
            this(table, principalRows, principalDigest, mirrorRows, mirrorDigest, List.of(), 0);
        }

        /** Whether both nodes hold the same rows. */
        public boolean identical() {
            return principalRows == mirrorRows && principalDigest.equals(mirrorDigest);
        }

        /** Whether more keys differ than {@link #differences()} names. */
        public boolean differencesCapped() {
            return differenceCount > differences.size();
        }

        /** The named differing keys of one kind, in key order. */
        public List<String> keys(RowDifference.Kind kind) {
            return differences.stream().filter(d -> d.kind() == kind).map(RowDifference::key).toList();
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

    /**
     * One object of a mirrored table whose definition differs between the nodes.
     *
     * @param table     schema-qualified table name
     * @param object    what differs: {@code table}, {@code column "name"}, {@code column order},
     *                  {@code constraint name}, {@code index name}, {@code trigger name} or {@code attachment}
     * @param principal its definition on the principal, or null where it is absent
     * @param mirror    its definition on the mirror, or null where it is absent
     */
    public record SchemaDifference(String table, String object, String principal, String mirror) {
    }

    /** The table of that name, if it was compared. */
    public Optional<TableChecksum> table(String name) {
        return tables.stream().filter(t -> t.table().equals(name)).findFirst();
    }

    /** The schema differences of one table. */
    public List<SchemaDifference> schema(String table) {
        return schema.stream().filter(d -> d.table().equals(table)).toList();
    }

    /** Whether every table is identical, no definition differs and no mirror sequence is behind. */
    public boolean identical() {
        return tables.stream().allMatch(TableChecksum::identical) && sequences.stream().allMatch(SequencePosition::mirrorNotBehind)
                && schema.isEmpty();
    }
}
