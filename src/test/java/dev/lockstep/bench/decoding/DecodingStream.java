package dev.lockstep.bench.decoding;

import org.postgresql.PGConnection;
import org.postgresql.PGProperty;
import org.postgresql.replication.PGReplicationStream;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

/**
 * Reads a two-phase test_decoding slot and hands each prepared transaction's change lines to
 * the committer waiting for its global transaction id. Decoding sends a transaction whole when it
 * is prepared, so the lines between its BEGIN and its PREPARE TRANSACTION are all its own.
 */
final class DecodingStream implements AutoCloseable {

    static final String SLOT = "lockstep_prototype";

    private final Map<String, CompletableFuture<List<String>>> waiting = new ConcurrentHashMap<>();
    private final Connection replication;
    private final PGReplicationStream stream;
    private final Thread reader;
    private volatile boolean closed;

    DecodingStream(String url) throws SQLException {
        Properties props = new Properties();
        PGProperty.REPLICATION.set(props, "database");
        PGProperty.ASSUME_MIN_SERVER_VERSION.set(props, "10");
        PGProperty.PREFER_QUERY_MODE.set(props, "simple");
        replication = DriverManager.getConnection(url, props);
        stream = replication.unwrap(PGConnection.class).getReplicationAPI().replicationStream().logical()
                .withSlotName(SLOT).withSlotOption("include-xids", false).withSlotOption("skip-empty-xacts", true)
                .withStatusInterval(1, TimeUnit.SECONDS).start();
        reader = new Thread(this::read, "decoding-prototype-reader");
        reader.setDaemon(true);
        reader.start();
    }

    /** Registers interest before the transaction is prepared, so that its lines cannot pass unseen. */
    CompletableFuture<List<String>> expect(String gid) {
        CompletableFuture<List<String>> f = new CompletableFuture<>();
        waiting.put(gid, f);
        return f;
    }

    void forget(String gid) {
        waiting.remove(gid);
    }

    private void read() {
        List<String> current = new ArrayList<>();
        try {
            while (!closed) {
                ByteBuffer b = stream.read();
                String line = new String(b.array(), b.arrayOffset() + b.position(), b.remaining(), StandardCharsets.UTF_8);
                if (line.startsWith("BEGIN")) {
                    current = new ArrayList<>();
                } else if (line.startsWith("table ")) {
                    current.add(line);
                } else if (line.startsWith("PREPARE TRANSACTION '")) {
                    String gid = line.substring("PREPARE TRANSACTION '".length(), line.lastIndexOf('\''));
                    CompletableFuture<List<String>> f = waiting.remove(gid);
                    if (f != null) {
                        f.complete(current);
                    }
                    confirm();
                } else if (line.startsWith("COMMIT") || line.startsWith("ROLLBACK")) {
                    confirm();
                }
            }
        } catch (SQLException e) {
            if (!closed) {
                waiting.values().forEach(f -> f.completeExceptionally(e));
            }
        }
    }

    private void confirm() {
        stream.setAppliedLSN(stream.getLastReceiveLSN());
        stream.setFlushedLSN(stream.getLastReceiveLSN());
    }

    @Override
    public void close() throws SQLException {
        closed = true;
        try {
            stream.close();
        } finally {
            replication.close();
        }
    }
}
