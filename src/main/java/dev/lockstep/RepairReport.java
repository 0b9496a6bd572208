package dev.lockstep;

import java.util.List;

/**
 * What {@link Partnership#repair(VerifyOptions)} changed on the mirror. Verify again to confirm.
 *
 * @param tables    each table found to differ: how many keys were rewritten from the principal,
 *                  or why it was left alone
 * @param sequences each mirror sequence that was behind and was advanced
 * @param schema    definition differences, which repair reports but never changes
 */
public record RepairReport(List<TableRepair> tables, List<SequenceRepair> sequences, List<VerifyReport.SchemaDifference> schema) {

    public RepairReport {
        tables = List.copyOf(tables);
        sequences = List.copyOf(sequences);
        schema = List.copyOf(schema);
    }

    /**
     * One table's repair, done in one mirror transaction while the principal's copy was locked.
     *
     * @param table   schema-qualified table name
     * @param changed rows on both nodes that differed, now the principal's
     * @param missing rows missing on the mirror, now copied
     * @param extra   rows only the mirror had, now deleted
     * @param skipped why the table was not repaired (its definition differs), or null when it was
     */
    public record TableRepair(String table, long changed, long missing, long extra, String skipped) {
        /** Whether the table's rows were repaired. */
        public boolean repaired() {
            return skipped == null;
        }
    }

    /**
     * One mirror sequence moved forward to the principal's position.
     *
     * @param sequence schema-qualified sequence name
     * @param from     its position on the mirror before, or null for none
     * @param to       the principal's position, now the mirror's
     */
    public record SequenceRepair(String sequence, Long from, long to) {
    }

    /** How many rows repair rewrote, deleted or copied. */
    public long rowsRepaired() {
        return tables.stream().mapToLong(t -> t.changed() + t.missing() + t.extra()).sum();
    }
}
