package dev.lockstep.bench.decoding;

import dev.lockstep.cli.ClientRunner;
import dev.lockstep.cli.TpcbWorkload;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * One client of the prototype: the transaction's statements on the principal, a journal row
 * there, PREPARE TRANSACTION; then its decoded rows applied on the mirror by primary key with the
 * journal row holding them, the mirror's COMMIT, and COMMIT PREPARED on the principal (the mirror
 * first, as in Lockstep). No fencing, in-doubt resolution or exposed mode: a throughput estimate.
 */
final class PrototypeClient implements ClientRunner.Client {

    private static final long DECODE_WAIT_SECONDS = 5;

    private final ClientRunner.Client onPrincipal;
    private final Connection principal;
    private final Connection mirror;
    private final DecodingStream decoded;
    private final Map<String, String> keys;
    private final PreparedStatement journalOnPrincipal;
    private final PreparedStatement journalOnMirror;
    private final Map<String, PreparedStatement> appliers = new HashMap<>();
    private long count;

    /**
     * @param onPrincipal the workload's client on the principal (autocommit off)
     * @param mirror      a mirror connection whose parameters the server types ({@code stringtype=unspecified})
     * @param keys        each mirrored table's primary key column, by the name decoding prints
     */
    PrototypeClient(ClientRunner.Client onPrincipal, Connection mirror, DecodingStream decoded, Map<String, String> keys)
            throws SQLException {
        this.onPrincipal = onPrincipal;
        this.principal = onPrincipal.connection();
        this.mirror = mirror;
        this.decoded = decoded;
        this.keys = keys;
        mirror.setAutoCommit(false);
        journalOnPrincipal = principal.prepareStatement("INSERT INTO prototype_journal (gid) VALUES (?)");
        journalOnMirror = mirror.prepareStatement("INSERT INTO prototype_journal (gid, changes) VALUES (?, ?)");
    }

    @Override
    public Connection connection() {
        return principal;
    }

    @Override
    public void transaction(SplittableRandom random) throws SQLException {
        String gid = "prototype-" + System.identityHashCode(this) + "-" + (++count);
        onPrincipal.transaction(random);
        journalOnPrincipal.setString(1, gid);
        journalOnPrincipal.executeUpdate();
        var lines = decoded.expect(gid);
        try (Statement st = principal.createStatement()) {
            st.execute("PREPARE TRANSACTION '" + gid + "'");
        } catch (SQLException e) {
            decoded.forget(gid);
            throw e;
        }
        try {
            applyOnMirror(gid, lines.get(DECODE_WAIT_SECONDS, TimeUnit.SECONDS));
            mirror.commit();
        } catch (SQLException | RuntimeException | ExecutionException | TimeoutException e) {
            mirror.rollback();
            TpcbWorkload.finishPrepared(principal, "ROLLBACK PREPARED '" + gid + "'");
            throw new SQLException("decoding prototype: transaction " + gid + " rolled back: " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new SQLException("decoding prototype: interrupted", e);
        }
        TpcbWorkload.finishPrepared(principal, "COMMIT PREPARED '" + gid + "'");
    }

    private void applyOnMirror(String gid, List<String> lines) throws SQLException {
        StringBuilder changes = new StringBuilder();
        for (String line : lines) {
            DecodedRow row = DecodedRow.parse(line);
            if (!keys.containsKey(row.table())) {
                continue;
            }
            changes.append(line).append('\n');
            PreparedStatement applier = applier(row);
            bind(applier, row);
            if (applier.executeUpdate() != 1) {
                throw new SQLException("decoding prototype: mirror row count differs for " + line);
            }
        }
        journalOnMirror.setString(1, gid);
        journalOnMirror.setString(2, changes.toString());
        journalOnMirror.executeUpdate();
    }

    /** INSERT binds every column; UPDATE every column but the key, then the key. */
    private void bind(PreparedStatement applier, DecodedRow row) throws SQLException {
        String key = keys.get(row.table());
        int index = 1;
        String keyValue = null;
        for (int i = 0; i < row.columns().size(); i++) {
            if (row.kind().equals("UPDATE") && row.columns().get(i).equals(key)) {
                keyValue = row.values().get(i);
            } else {
                applier.setString(index++, row.values().get(i));
            }
        }
        if (keyValue != null) {
            applier.setString(index, keyValue);
        }
    }

    private PreparedStatement applier(DecodedRow row) throws SQLException {
        String name = row.table() + " " + row.kind();
        PreparedStatement applier = appliers.get(name);
        if (applier == null) {
            applier = mirror.prepareStatement(sql(row));
            appliers.put(name, applier);
        }
        return applier;
    }

    private String sql(DecodedRow row) {
        String key = keys.get(row.table());
        List<String> columns = row.columns();
        return switch (row.kind()) {
            case "INSERT" -> "INSERT INTO " + row.table() + " (" + String.join(", ", columns) + ") VALUES ("
                    + String.join(", ", columns.stream().map(c -> "?").toList()) + ")";
            case "UPDATE" -> "UPDATE " + row.table() + " SET " + String.join(", ",
                    columns.stream().filter(c -> !c.equals(key)).map(c -> c + " = ?").toList()) + " WHERE " + key + " = ?";
            default -> throw new IllegalArgumentException("decoding prototype: TPC-B writes no " + row.kind());
        };
    }

    @Override
    public void close() throws SQLException {
        try {
            onPrincipal.close();
        } finally {
            mirror.close();
        }
    }
}
