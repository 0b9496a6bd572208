package dev.lockstep;

import dev.lockstep.core.MirroringState;
import dev.lockstep.core.RowDifference;
import dev.lockstep.core.RowMerge;
import dev.lockstep.jdbc.SqlStates;

import java.sql.SQLException;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Consumer;

/**
 * Verify and repair (SQL Server's automatic page repair is the model for the repair): compares
 * every attached table's definition and rows, and the sequences they draw from, on both nodes;
 * repair rewrites the mirror's differing rows from the principal.
 */
final class Verifier {

    /** Differing keys repaired per round trip. */
    static final int REPAIR_BATCH = 500;
    /** The table's definition differences, read in a transaction of their own on each node. */
    private static List<VerifyReport.SchemaDifference> definitionDifferences(NodeLink p, NodeLink m, String table) throws SQLException {
        try {
            return definitions(p, m, table).differences();
        } finally {
            p.end();
            m.end();
        }
    }

    private static final String DIVERGED = "XX001";

    private final Coordinator coordinator;
    private final VerifyOptions options;

    Verifier(Coordinator coordinator, VerifyOptions options) {
        this.coordinator = Objects.requireNonNull(coordinator, "coordinator");
        this.options = Objects.requireNonNull(options, "options");
    }

    /** Compares both nodes; each table's two copies are read in one snapshot per node. */
    VerifyReport verify() throws SQLException {
        Coordinator.Topology t = coordinator.topology();
        try (NodeLink p = NodeLink.open(coordinator, t.principal, false, options);
             NodeLink m = NodeLink.open(coordinator, t.mirror, true, options)) {
            List<String> onPrincipal = p.attachedTables();
            List<VerifyReport.TableChecksum> tables = new ArrayList<>();
            List<VerifyReport.SchemaDifference> schema = new ArrayList<>();
            for (String table : union(onPrincipal, m.attachedTables())) {
                Definitions d;
                try {
                    d = definitions(p, m, table);
                } finally {
                    p.end();
                    m.end();
                }
                schema.addAll(d.differences());
                if (onPrincipal.contains(table) && d.onBoth()) {
                    tables.add(compareRows(p, m, table, d.common()));
                }
            }
            return new VerifyReport(tables, sequences(p.sequencePositions(), m.sequencePositions()), schema);
        }
    }

    /** Repairs the mirror from the principal, table by table; see {@link Partnership#repair(VerifyOptions)}. */
    RepairReport repair() throws SQLException {
        Coordinator.Topology t = coordinator.topology();
        MirroringState state = coordinator.status().state();
        if (state != MirroringState.SYNCHRONIZED) {
            throw SqlStates.error(SqlStates.NOT_READY, "lockstep: partnership " + coordinator.config().partnership() + " is " + state
                    + " at epoch " + t.epoch + "; repair needs a SYNCHRONIZED mirror (catch-up brings a mirror that is behind)", null);
        }
        try (NodeLink p = NodeLink.open(coordinator, t.principal, false, options);
             NodeLink m = NodeLink.open(coordinator, t.mirror, true, options)) {
            List<String> onPrincipal = p.attachedTables();
            List<RepairReport.TableRepair> tables = new ArrayList<>();
            List<VerifyReport.SchemaDifference> schema = new ArrayList<>();
            for (String table : union(onPrincipal, m.attachedTables())) {
                if (!onPrincipal.contains(table)) {
                    schema.addAll(definitionDifferences(p, m, table));
                    continue;
                }
                if (!rowsDiffer(p, m, table)) {
                    // Nothing to lock for: its writers need not wait. Definitions are still reported.
                    schema.addAll(definitionDifferences(p, m, table));
                    continue;
                }
                RepairReport.TableRepair repaired = repairTable(p, m, t.epoch, table, schema);
                if (repaired != null) {
                    tables.add(repaired);
                }
            }
            return new RepairReport(tables, repairSequences(p, m, t.epoch), schema);
        }
    }

    /** Whether the table's rows differ, or it is missing on a node, as a snapshot of each node shows. */
    private static boolean rowsDiffer(NodeLink p, NodeLink m, String table) throws SQLException {
        try {
            Definitions d = definitions(p, m, table);
            if (!d.onBoth()) {
                return true;
            }
            p.end();
            m.end();
            p.beginSnapshot(table);
            m.beginSnapshot(table);
            return !p.checksum(table, d.common()).equals(m.checksum(table, d.common()));
        } finally {
            p.end();
            m.end();
        }
    }

    private VerifyReport.TableChecksum compareRows(NodeLink p, NodeLink m, String table, List<String> columns) throws SQLException {
        try {
            p.beginSnapshot(table);
            m.beginSnapshot(table);
            NodeLink.Checksum cp = p.checksum(table, columns);
            NodeLink.Checksum cm = m.checksum(table, columns);
            if (cp.equals(cm)) {
                return new VerifyReport.TableChecksum(table, cp.rows(), cp.digest(), cm.rows(), cm.digest());
            }
            if (!columns.containsAll(p.keyNames(table))) {
                // The mirror lacks a key column (a schema difference): rows cannot be matched by key.
                return new VerifyReport.TableChecksum(table, cp.rows(), cp.digest(), cm.rows(), cm.digest());
            }
            List<RowDifference> named = new ArrayList<>();
            long count = merge(p, m, table, columns, d -> {
                if (named.size() < options.maxKeysPerTable()) {
                    named.add(d);
                }
            });
            return new VerifyReport.TableChecksum(table, cp.rows(), cp.digest(), cm.rows(), cm.digest(), named, count);
        } finally {
            p.end();
            m.end();
        }
    }

    /**
     * One table: the principal's copy locked in SHARE mode (its writers wait, so no commit races
     * the repair), the mirror's in EXCLUSIVE mode; the differing rows rewritten in one mirror
     * transaction, committed before the principal's lock goes.
     *
     * @return what was done, or null when the rows were identical
     */
    private RepairReport.TableRepair repairTable(NodeLink p, NodeLink m, long epoch, String table,
                                                 List<VerifyReport.SchemaDifference> schema) throws SQLException {
        try {
            p.execute("repair", table, "SELECT lockstep.require_repair_role('principal', ?)", epoch);
            m.execute("repair", table, "SELECT lockstep.require_repair_role('mirror', ?)", epoch);
            Definitions before = definitions(p, m, table);
            if (!before.onBoth()) {
                schema.addAll(before.differences());
                return new RepairReport.TableRepair(table, 0, 0, 0, "the table is missing on one node");
            }
            p.lock(table, "SHARE");
            m.lock(table, "EXCLUSIVE");
            Definitions d = definitions(p, m, table);
            schema.addAll(d.differences());
            NodeLink.Checksum cp = p.checksum(table, d.common());
            NodeLink.Checksum cm = m.checksum(table, d.common());
            if (cp.equals(cm)) {
                return null;
            }
            if (!d.differences().isEmpty()) {
                return new RepairReport.TableRepair(table, 0, 0, 0,
                        "its definition differs between the nodes; make the definitions agree, then repair the rows");
            }
            RepairBatch batch = new RepairBatch(p, m, table);
            merge(p, m, table, d.common(), batch::add);
            batch.flush();
            m.commit(table);
            return new RepairReport.TableRepair(table, batch.changed, batch.missing, batch.extra, null);
        } finally {
            m.end();
            p.end();
        }
    }

    /** Moves each mirror sequence that is behind to the principal's position. */
    private static List<RepairReport.SequenceRepair> repairSequences(NodeLink p, NodeLink m, long epoch) throws SQLException {
        List<RepairReport.SequenceRepair> repaired = new ArrayList<>();
        Map<String, Long> onMirror = m.sequencePositions();
        for (VerifyReport.SequencePosition s : sequences(p.sequencePositions(), onMirror)) {
            // A sequence missing on the mirror is a definition difference: reported by verify, not repaired.
            if (s.mirrorNotBehind() || !onMirror.containsKey(s.sequence())) {
                continue;
            }
            try {
                m.execute("repair", s.sequence(), "SELECT lockstep.require_repair_role('mirror', ?)", epoch);
                m.execute("repair (advancing the sequence)", s.sequence(), "SELECT lockstep.advance_sequence(?, ?)",
                        s.sequence(), s.principal());
                m.commit(s.sequence());
            } finally {
                m.end();
            }
            repaired.add(new RepairReport.SequenceRepair(s.sequence(), s.mirror(), s.principal()));
        }
        return repaired;
    }

    private static long merge(NodeLink p, NodeLink m, String table, List<String> columns, Consumer<RowDifference> sink)
            throws SQLException {
        List<String> keys = p.keyNames(table);
        try (NodeLink.RowStream ps = p.rowHashes(table, columns, keys); NodeLink.RowStream ms = m.rowHashes(table, columns, keys)) {
            return RowMerge.merge(ps, ms, sink);
        } catch (NodeLink.StreamFailure e) {
            throw e.getCause();
        } catch (IllegalStateException e) {
            throw SqlStates.error("XX000", "lockstep: comparing the rows of table " + table + " failed: " + e.getMessage(), e);
        }
    }

    private static List<VerifyReport.SequencePosition> sequences(Map<String, Long> onPrincipal, Map<String, Long> onMirror) {
        List<VerifyReport.SequencePosition> sequences = new ArrayList<>();
        onPrincipal.forEach((s, pos) -> sequences.add(new VerifyReport.SequencePosition(s, pos, onMirror.get(s))));
        return sequences;
    }

    private static Set<String> union(List<String> a, List<String> b) {
        Set<String> all = new TreeSet<>(a);
        all.addAll(b);
        return all;
    }

    /**
     * A table's definitions on both nodes compared.
     *
     * @param differences what differs
     * @param common      the principal's columns that the mirror has too, in the principal's order
     * @param onBoth      whether the table exists on both nodes
     */
    private record Definitions(List<VerifyReport.SchemaDifference> differences, List<String> common, boolean onBoth) {
    }

    private static Definitions definitions(NodeLink p, NodeLink m, String table) throws SQLException {
        Map<String, String> onPrincipal = p.schemaFacts(table);
        Map<String, String> onMirror = m.schemaFacts(table);
        boolean onBoth = onPrincipal.containsKey("table") && onMirror.containsKey("table");
        Set<String> objects = new LinkedHashSet<>(onPrincipal.keySet());
        objects.addAll(onMirror.keySet());
        List<VerifyReport.SchemaDifference> differences = new ArrayList<>();
        for (String object : objects) {
            // A table missing on one node is one difference, not one per column.
            boolean relevant = onBoth || object.equals("table") || object.equals("attachment");
            if (relevant && !Objects.equals(onPrincipal.get(object), onMirror.get(object))) {
                differences.add(new VerifyReport.SchemaDifference(table, object, onPrincipal.get(object), onMirror.get(object)));
            }
        }
        List<String> mirrorColumns = m.columns(table);
        List<String> common = p.columns(table).stream().filter(mirrorColumns::contains).toList();
        return new Definitions(differences, common, onBoth);
    }

    /** Differing keys of one table, repaired a batch at a time while the streams run. */
    private static final class RepairBatch {
        private final NodeLink p;
        private final NodeLink m;
        private final String table;
        private final List<RowDifference> pending = new ArrayList<>();
        long changed;
        long missing;
        long extra;

        RepairBatch(NodeLink p, NodeLink m, String table) {
            this.p = p;
            this.m = m;
            this.table = table;
        }

        void add(RowDifference d) {
            pending.add(d);
            if (pending.size() >= REPAIR_BATCH) {
                try {
                    flush();
                } catch (SQLException e) {
                    throw new NodeLink.StreamFailure(e);
                }
            }
        }

        /** Deletes the batch's keys on the mirror and copies the principal's rows for them. */
        void flush() throws SQLException {
            if (pending.isEmpty()) {
                return;
            }
            long c = count(RowDifference.Kind.CHANGED);
            long mi = count(RowDifference.Kind.MISSING_ON_MIRROR);
            long ex = count(RowDifference.Kind.EXTRA_ON_MIRROR);
            String wanted = json(pending.stream().filter(d -> d.kind() != RowDifference.Kind.EXTRA_ON_MIRROR).toList());
            String rows = c + mi == 0 ? "[]" : p.rowsByKey(table, wanted);
            long[] done = m.repairRows(table, json(pending), rows);
            if (done[0] != c + ex || done[1] != c + mi) {
                throw SqlStates.error(DIVERGED, "lockstep: repair of table " + table + " on " + m.describe() + " expected to delete "
                        + (c + ex) + " and copy " + (c + mi) + " rows but deleted " + done[0] + " and copied " + done[1]
                        + "; the table changed meanwhile, and nothing of it was repaired", null);
            }
            changed += c;
            missing += mi;
            extra += ex;
            pending.clear();
        }

        private long count(RowDifference.Kind kind) {
            return pending.stream().filter(d -> d.kind() == kind).count();
        }

        /** The keys as a JSON array; each key is already a JSON object. */
        private static String json(List<RowDifference> differences) {
            StringBuilder b = new StringBuilder("[");
            for (RowDifference d : differences) {
                b.append(b.length() > 1 ? "," : "").append(d.key());
            }
            return b.append(']').toString();
        }
    }
}
