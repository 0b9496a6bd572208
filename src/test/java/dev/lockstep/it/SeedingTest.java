package dev.lockstep.it;

import dev.lockstep.CatchUpResult;
import dev.lockstep.LockstepConfig;
import dev.lockstep.LockstepDataSource;
import dev.lockstep.NodeConfig;
import dev.lockstep.VerifyReport;
import dev.lockstep.commit.JournalReplay;
import dev.lockstep.commit.MirrorGap;
import dev.lockstep.commit.SeedMark;
import dev.lockstep.core.MirroringState;
import dev.lockstep.core.PartnerHealth;
import dev.lockstep.events.LockstepEvent;
import dev.lockstep.core.PartnershipRecord;
import dev.lockstep.witness.WitnessStore;
import org.junit.jupiter.api.Test;

import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import static dev.lockstep.it.TwoNodes.rows;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/** A brand-new, empty mirror is seeded online from the principal while the application keeps writing. */
class SeedingTest extends OnTwoNodesAndWitness {

    private static final String[] TABLES = {"t", "items", "orders", "labels"};

    private static LockstepConfig config(TwoNodes.Pair pair) {
        return pair.config().witness(witness.config()).partnerTimeout(Duration.ofSeconds(2))
                .heartbeatInterval(Duration.ofMillis(200)).build();
    }

    private static PartnershipRecord record(TwoNodes.Pair pair) throws SQLException {
        return witness.store().read(pair.partnership()).record();
    }

    /**
     * A partnership with data runs; its mirror is replaced by a new empty database. The new
     * mirror gets the schema (identity, serial, defaults, generated and collated columns, checks,
     * foreign keys, indexes), the rows and the sequence positions from a snapshot of the principal
     * while writers keep committing, then catches up and is SYNCHRONIZED; both nodes identical.
     */
    @Test
    void newEmptyMirrorIsSeededUnderLoadAndEndsIdentical() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("seednew");
        LockstepConfig first = config(pair);
        try (LockstepDataSource ds = LockstepDataSource.start(first); Connection c = ds.getConnection();
             Statement st = c.createStatement()) {
            st.execute("CREATE TABLE t (id bigint PRIMARY KEY)");
            st.execute("CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL DEFAULT 'item',"
                    + " price numeric(10,2) NOT NULL CHECK (price >= 0), tags text[], made timestamptz DEFAULT now(),"
                    + " doubled numeric GENERATED ALWAYS AS (price * 2) STORED, UNIQUE (name, price))");
            st.execute("CREATE INDEX items_price ON items (price DESC)");
            st.execute("CREATE TABLE orders (id serial PRIMARY KEY, item_id bigint NOT NULL REFERENCES items (id),"
                    + " note varchar(40), qty int DEFAULT 1)");
            st.execute("CREATE TABLE labels (code text COLLATE \"C\" PRIMARY KEY, payload jsonb, raw bytea)");
            st.execute("INSERT INTO items (name, price, tags) SELECT 'item-' || g, g * 1.25, ARRAY['a', 'b' || g]"
                    + " FROM generate_series(1, 500) g");
            st.execute("INSERT INTO orders (item_id, note) SELECT 1 + g % 500, 'order ' || g FROM generate_series(1, 300) g");
            st.execute("INSERT INTO labels SELECT 'L' || g, jsonb_build_object('g', g), decode(md5(g::text), 'hex')"
                    + " FROM generate_series(1, 200) g");
            st.execute("INSERT INTO t SELECT g FROM generate_series(1, 1000) g");
        }
        String fresh = nodes.b().createDatabase("seednew_fresh");
        LockstepConfig second = first.toBuilder()
                .mirror(NodeConfig.of("node-b", nodes.b().jdbcUrl(fresh), nodes.b().user(), nodes.b().password())).build();
        AtomicBoolean stop = new AtomicBoolean();
        ExecutorService others = Executors.newFixedThreadPool(2);
        try (LockstepDataSource ds = LockstepDataSource.start(second); Writers writers = Writers.start(ds, 2, 1_000_000)) {
            for (int w = 0; w < 2; w++) {
                others.submit(() -> {
                    while (!stop.get()) {
                        int id = ThreadLocalRandom.current().nextInt(1, 501);
                        TwoNodes.acknowledged(ds, "UPDATE items SET price = price + 0.01 WHERE id = " + id);
                        TwoNodes.acknowledged(ds, "INSERT INTO orders (item_id, note) VALUES (" + id + ", 'late')");
                        TwoNodes.acknowledged(ds, "INSERT INTO items (name, price) VALUES ('new-' || gen_random_uuid(), 1)");
                    }
                    return null;
                });
            }
            await().ignoreExceptions().atMost(Duration.ofSeconds(120)).pollInterval(Duration.ofMillis(100))
                    .until(() -> record(pair).state() == MirroringState.SYNCHRONIZED);
            int synced = writers.count();
            await().atMost(Duration.ofSeconds(30)).until(() -> writers.count() >= synced + 200);
            writers.stop();
            stop.set(true);
            others.shutdown();
            assertThat(others.awaitTermination(60, TimeUnit.SECONDS)).isTrue();

            CatchUpResult result = ds.partnership().lastCatchUp().orElseThrow();
            assertThat(result.seeded()).isTrue();
            assertThat(ds.partnership().mirrorNeedsSeeding()).isFalse();
            assertThat(witness.store().mirrorNeedsSeeding(pair.partnership())).isFalse();
            VerifyReport report = ds.partnership().verify();
            assertThat(report.identical()).as("%s", report).isTrue();
            assertThat(ds.partnership().attachedTables()).containsExactlyInAnyOrder("public.t", "public.items", "public.orders",
                    "public.labels");
            try (Connection p = pair.principal(); Connection m = nodes.b().connectDirect(fresh)) {
                assertThat(Writers.ids(m)).containsAll(writers.acknowledged());
                for (String table : TABLES) {
                    // As text: arrays and bytea would otherwise compare by identity.
                    String sql = "SELECT r::text FROM " + table + " r ORDER BY 1";
                    assertThat(rows(m, sql)).as(table).isEqualTo(rows(p, sql));
                }
                assertThat(Catalog.dump(m)).isEqualTo(Catalog.dump(p));
                // I3: the mirror's sequences are at the principal's positions.
                String seqs = "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1";
                assertThat(rows(m, seqs)).isEqualTo(rows(p, seqs));
                assertThat(rows(m, "SELECT role, epoch FROM lockstep.node_state")).containsExactly(List.of("mirror", 1L));
            }
            // After seeding it mirrors in lockstep like any other mirror: a write lands on both.
            assertThat(TwoNodes.acknowledged(ds, "INSERT INTO items (name, price) VALUES ('after', 2)")).isTrue();
            try (Connection m = nodes.b().connectDirect(fresh)) {
                assertThat(TwoNodes.value(m, "SELECT count(*) FROM items WHERE name = 'after'")).isEqualTo(1L);
            }
        } finally {
            stop.set(true);
            others.shutdownNow();
        }
        assertThat(witness.store().history(pair.partnership())).extracting(WitnessStore.Transition::reason)
                .contains("mirror node-b is a new, blank node: seeding it");
    }

    /**
     * Re-seeding empties the mirrored tables on the mirror; a table only the mirror holds that
     * references one of them would be emptied too (CASCADE). Seeding is refused instead, each
     * attempt raises {@code CatchUpFailed} naming the table, nothing changes on the mirror, and
     * once the operator drops that table the next attempt seeds the mirror.
     */
    @Test
    void seedingRefusesToEmptyATableOnlyTheMirrorHoldsAndSeedsOnceItIsGone() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("seedref");
        List<LockstepEvent.CatchUpFailed> failures = new CopyOnWriteArrayList<>();
        try (LockstepDataSource ds = LockstepDataSource.start(config(pair)); Connection m = pair.mirror();
             Statement ms = m.createStatement()) {
            ds.partnership().addListener(e -> {
                if (e instanceof LockstepEvent.CatchUpFailed f) {
                    failures.add(f);
                }
            });
            assertThat(TwoNodes.acknowledged(ds, "CREATE TABLE parent (id int PRIMARY KEY)")).isTrue();
            assertThat(TwoNodes.acknowledged(ds, "INSERT INTO parent SELECT generate_series(1, 3)")).isTrue();
            ms.execute("SET lockstep.internal = on");
            ms.execute("CREATE TABLE mirror_notes (id int PRIMARY KEY, parent_id int REFERENCES parent (id))");
            ms.execute("INSERT INTO mirror_notes VALUES (1, 1)");

            ds.partnership().reseedMirror();
            await().atMost(Duration.ofSeconds(30)).until(() -> !failures.isEmpty());
            LockstepEvent.CatchUpFailed failure = failures.get(0);
            assertThat(failure.mirror()).isEqualTo("node-b");
            assertThat(failure.sqlState()).isEqualTo("0A000");
            assertThat(failure.transientFailure()).as("a table in the way needs an operator").isFalse();
            assertThat(failure.failuresInARow()).isEqualTo(1);
            assertThat(failure.message()).contains("seeding mirror node node-b failed, nothing changed on it")
                    .contains("mirror_notes");
            assertThat(record(pair).state()).isNotEqualTo(MirroringState.SYNCHRONIZED);
            assertThat(TwoNodes.value(m, "SELECT count(*) FROM mirror_notes")).isEqualTo(1L);
            assertThat(TwoNodes.value(m, "SELECT count(*) FROM parent")).isEqualTo(3L);
            // The principal keeps committing, exposed, meanwhile.
            assertThat(TwoNodes.acknowledged(ds, "INSERT INTO parent VALUES (4)")).isTrue();

            ms.execute("DROP TABLE mirror_notes");
            // The catch-up records SYNCHRONIZED before it reports its result.
            await().ignoreExceptions().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(100))
                    .until(() -> record(pair).state() == MirroringState.SYNCHRONIZED && ds.partnership().lastCatchUp().isPresent());
            assertThat(ds.partnership().lastCatchUp().orElseThrow().seeded()).isTrue();
            assertThat(TwoNodes.value(m, "SELECT count(*) FROM parent")).isEqualTo(4L);
            assertThat(ds.partnership().verify().identical()).isTrue();
        }
    }

    /**
     * The mirror comes back restored from a backup older than the position below which the
     * principal deleted its journal records: the records between are gone, so replaying the rest
     * would leave rows out silently. It is re-seeded instead and ends identical.
     */
    @Test
    void aMirrorRestoredFromABackupOlderThanThePrincipalsTrimPositionIsSeeded() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("restored");
        try (LockstepDataSource ds = LockstepDataSource.start(config(pair)); Connection p = pair.principal();
             Connection m = pair.mirror(); Statement ms = m.createStatement(); Statement ps = p.createStatement()) {
            assertThat(TwoNodes.acknowledged(ds, "CREATE TABLE t (id bigint PRIMARY KEY)")).isTrue();
            for (int id = 1; id <= 10; id++) {
                assertThat(TwoNodes.acknowledged(ds, "INSERT INTO t VALUES (" + id + ")")).isTrue();
            }
            // One record per insert, newest first: the record of row 10, then those of 9, 8, ... 5.
            List<List<Object>> newest = rows(p, "SELECT epoch, seq FROM lockstep.journal WHERE epoch > 0"
                    + " ORDER BY epoch DESC, seq DESC LIMIT 6");
            nodes.b().proxy().partition();
            try {
                await().ignoreExceptions().atMost(Duration.ofSeconds(30)).until(() -> record(pair).state() == MirroringState.DISCONNECTED);
                for (int id = 11; id <= 20; id++) {
                    assertThat(TwoNodes.acknowledgedWithRetries(ds, "INSERT INTO t VALUES (" + id + ") ON CONFLICT DO NOTHING")).isTrue();
                }
                // Retention deleted the records below row 10's, which both nodes held then.
                ps.execute("SELECT lockstep.trim_journal(" + newest.get(0).get(0) + ", " + newest.get(0).get(1) + ")");
                // The mirror is restored from a backup taken after row 5.
                ms.execute("SET session_replication_role = replica");
                ms.execute("SET lockstep.applier = on");
                ms.execute("DELETE FROM t WHERE id > 5");
                ms.execute("DELETE FROM lockstep.journal WHERE epoch > 0 AND (epoch, seq) > (" + newest.get(5).get(0) + ", "
                        + newest.get(5).get(1) + ")");
            } finally {
                nodes.b().proxy().heal();
            }
            // The catch-up records SYNCHRONIZED before it reports its result.
            await().ignoreExceptions().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(100))
                    .until(() -> record(pair).state() == MirroringState.SYNCHRONIZED && ds.partnership().lastCatchUp().isPresent());
            assertThat(ds.partnership().lastCatchUp().orElseThrow().seeded()).isTrue();
            assertThat(rows(m, "SELECT id FROM t ORDER BY id")).hasSize(20).isEqualTo(rows(p, "SELECT id FROM t ORDER BY id"));
            assertThat(ds.partnership().verify().identical()).isTrue();
        }
        assertThat(witness.store().history(pair.partnership())).extracting(WitnessStore.Transition::reason)
                .contains("mirror node-b lacks journal records the principal trimmed: re-seeding it");
    }

    /**
     * The mirror is put back to an older backup while no coordinator runs, and the witness still
     * records it SYNCHRONIZED. The next start finds that the mirror lacks the principal's newest
     * transaction, records it behind, and catch-up replays what it lacks; before, lockstep went on
     * over the gap (a later failover would have served a mirror missing acknowledged rows).
     */
    @Test
    void aMirrorPutBackToAnOlderBackupWhileNoCoordinatorRanIsCaughtUpAtTheNextStart() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("putback");
        putMirrorBackToAnOlderBackup(pair, config(pair), false);
        try (LockstepDataSource ds = LockstepDataSource.start(config(pair)); Connection p = pair.principal();
             Connection m = pair.mirror()) {
            // The catch-up records SYNCHRONIZED before it reports its result.
            await().ignoreExceptions().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(100))
                    .until(() -> record(pair).state() == MirroringState.SYNCHRONIZED && ds.partnership().lastCatchUp().isPresent());
            assertThat(ds.partnership().lastCatchUp().orElseThrow().replayed()).isEqualTo(5);
            assertThat(rows(m, "SELECT id FROM t ORDER BY id")).hasSize(10).isEqualTo(rows(p, "SELECT id FROM t ORDER BY id"));
            assertThat(ds.partnership().verify().identical()).isTrue();
        }
        assertThat(witness.store().history(pair.partnership())).extracting(WitnessStore.Transition::reason)
                .anyMatch(r -> r.startsWith("mirror node-b lacks journal record ") && r.endsWith("that principal node-a committed: catching it up"));
    }

    /**
     * The mirror is put back to an older copy while the coordinator runs, faster than the partner
     * timeout, so it never counts as failed. The monitor sees that it came back as another
     * incarnation, compares the journals, records it behind, and catch-up replays what it lacks.
     * Before, lockstep went on over the gap.
     */
    @Test
    void aMirrorPutBackWhileTheCoordinatorRunsIsCaughtUp() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("putbacklive");
        List<LockstepEvent.MirrorRestarted> restarts = new CopyOnWriteArrayList<>();
        try (LockstepDataSource ds = LockstepDataSource.start(noticingRestarts(pair, Duration.ofMillis(200), restarts));
             Connection p = pair.principal()) {
            committedRowsOneToTen(ds);
            String before = incarnation(pair);
            removeNewestFiveFromTheMirror(pair);
            restartTheMirrorBehindASilentLink(ds);
            await().ignoreExceptions().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(100))
                    .until(() -> record(pair).state() == MirroringState.SYNCHRONIZED && ds.partnership().lastCatchUp().isPresent());
            assertThat(restarts).singleElement().satisfies(r -> {
                assertThat(r.mirror()).isEqualTo("node-b");
                assertThat(r.finding()).isEqualTo(LockstepEvent.MirrorFinding.BEHIND_CATCHING_UP);
                assertThat(r.incarnation()).isNotEqualTo(before);
            });
            assertThat(ds.partnership().lastCatchUp().orElseThrow().replayed()).isEqualTo(5);
            try (Connection m = pair.mirror()) {
                assertThat(rows(m, "SELECT id FROM t ORDER BY id")).hasSize(10).isEqualTo(rows(p, "SELECT id FROM t ORDER BY id"));
            }
            assertThat(ds.partnership().verify().identical()).isTrue();
        }
        assertThat(witness.store().history(pair.partnership())).extracting(WitnessStore.Transition::reason)
                .anyMatch(r -> r.startsWith("mirror node-b lacks journal record ") && r.endsWith("committed: catching it up"));
    }

    /**
     * As above, but a commit reaches the put-back mirror before the monitor's next pass: it
     * updates a row whose previous update is in the gap. Replaying the gap after it would undo it
     * on the mirror (the row would read 5 there and 7 on the principal), so the mirror, which holds
     * commits on top of a gap, is seeded instead of caught up.
     */
    @Test
    void aMirrorPutBackThatTookACommitBeforeTheComparisonIsSeeded() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("putbackgap");
        List<LockstepEvent.MirrorRestarted> restarts = new CopyOnWriteArrayList<>();
        // Probes 6 s apart: the commit below lands well before the probe that sees the restart.
        try (LockstepDataSource ds = LockstepDataSource.start(noticingRestarts(pair, Duration.ofSeconds(6), restarts));
             Connection p = pair.principal()) {
            assertThat(TwoNodes.acknowledged(ds, "CREATE TABLE t (id bigint PRIMARY KEY, v int NOT NULL)")).isTrue();
            assertThat(TwoNodes.acknowledged(ds, "INSERT INTO t SELECT g, 1 FROM generate_series(1, 3) g")).isTrue();
            assertThat(TwoNodes.acknowledged(ds, "UPDATE t SET v = 5 WHERE id = 1")).isTrue();
            try (Connection m = pair.mirror(); Statement ms = m.createStatement()) {
                // The mirror as it was before the update: row and journal record.
                ms.execute("SET session_replication_role = replica");
                ms.execute("SET lockstep.applier = on");
                ms.execute("UPDATE t SET v = 1 WHERE id = 1");
                ms.execute("DELETE FROM lockstep.journal WHERE epoch > 0 AND (epoch, seq) = (SELECT epoch, seq FROM lockstep.journal"
                        + " WHERE epoch > 0 ORDER BY epoch DESC, seq DESC LIMIT 1)");
            }
            restartTheMirrorBehindASilentLink(ds);
            assertThat(TwoNodes.acknowledgedWithRetries(ds, "UPDATE t SET v = 7 WHERE id = 1")).isTrue();
            await().ignoreExceptions().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(100))
                    .until(() -> record(pair).state() == MirroringState.SYNCHRONIZED && ds.partnership().lastCatchUp().isPresent());
            assertThat(restarts).singleElement().satisfies(r -> assertThat(r.finding()).isEqualTo(LockstepEvent.MirrorFinding.GAP_RESEEDING));
            assertThat(ds.partnership().lastCatchUp().orElseThrow().seeded()).isTrue();
            try (Connection m = pair.mirror()) {
                assertThat(rows(m, "SELECT id, v FROM t ORDER BY id")).isEqualTo(rows(p, "SELECT id, v FROM t ORDER BY id"))
                        .contains(List.of(1L, 7));
            }
            assertThat(ds.partnership().verify().identical()).isTrue();
        }
        assertThat(witness.store().history(pair.partnership())).extracting(WitnessStore.Transition::reason)
                .anyMatch(r -> r.startsWith("mirror node-b lacks 1 of the principal's ") && r.endsWith("re-seeding it, as it holds later"
                        + " commits on top of the gap"));
    }

    /** A mirror that restarts with its journal intact is compared too, and stays SYNCHRONIZED. */
    @Test
    void aMirrorRestartedWithItsJournalIntactStaysSynchronized() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("restartlive");
        List<LockstepEvent.MirrorRestarted> restarts = new CopyOnWriteArrayList<>();
        LockstepConfig config = noticingRestarts(pair, Duration.ofMillis(200), restarts);
        try (LockstepDataSource ds = LockstepDataSource.start(config)) {
            committedRowsOneToTen(ds);
            restartTheMirrorBehindASilentLink(ds);
            await().atMost(Duration.ofSeconds(30)).until(() -> !restarts.isEmpty());
            assertThat(restarts.get(0).finding()).isEqualTo(LockstepEvent.MirrorFinding.HOLDS_EVERY_RECORD);
            assertThat(record(pair).state()).isEqualTo(MirroringState.SYNCHRONIZED);
            assertThat(TwoNodes.acknowledgedWithRetries(ds, "INSERT INTO t VALUES (11) ON CONFLICT DO NOTHING")).isTrue();
            assertThat(ds.partnership().verify().identical()).isTrue();
        }
        assertThat(witness.store().history(pair.partnership())).extracting(WitnessStore.Transition::reason)
                .noneMatch(r -> r.contains(" lacks "));
    }

    /**
     * The comparison that finds a gap below the principal's newest record: records missing in the
     * middle of the mirror's journal are counted, a complete journal gives nothing, and records
     * the mirror holds beyond the principal's (commits in flight) do not hide missing ones.
     */
    @Test
    void recordsMissingOnMirrorFindsAGapBelowTheNewestRecord() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("gapcount");
        try (LockstepDataSource ds = LockstepDataSource.start(config(pair))) {
            committedRowsOneToTen(ds);
        }
        try (Connection p = pair.principal(); Connection m = pair.mirror(); Statement ms = m.createStatement()) {
            long epoch = (Long) TwoNodes.value(p, "SELECT epoch FROM lockstep.node_state");
            assertThat(MirrorGap.recordsMissingOnMirror(p, m, epoch, Duration.ofSeconds(5))).isEmpty();
            List<List<Object>> middle = rows(p, "SELECT seq FROM lockstep.journal WHERE epoch = " + epoch + " ORDER BY seq DESC OFFSET 3 LIMIT 2");
            ms.execute("DELETE FROM lockstep.journal WHERE epoch = " + epoch + " AND seq IN (" + middle.get(0).get(0) + ", "
                    + middle.get(1).get(0) + ")");
            // Two records only the mirror holds, as commits in flight would be.
            ms.execute("INSERT INTO lockstep.journal (epoch, seq, gid, origin, committed_at, changes) SELECT epoch, seq + 1000, gid || '-x',"
                    + " origin, committed_at, changes FROM lockstep.journal WHERE epoch = " + epoch + " ORDER BY seq DESC LIMIT 2");
            assertThat(MirrorGap.newestRecordMissingOnMirror(p, m, Duration.ofSeconds(5))).isEmpty();
            assertThat(MirrorGap.recordsMissingOnMirror(p, m, epoch, Duration.ofSeconds(5)))
                    .hasValueSatisfying(v -> assertThat(v).startsWith("2 of the principal's "));
        }
    }

    private static void committedRowsOneToTen(LockstepDataSource ds) {
        assertThat(TwoNodes.acknowledged(ds, "CREATE TABLE t (id bigint PRIMARY KEY)")).isTrue();
        for (int id = 1; id <= 10; id++) {
            assertThat(TwoNodes.acknowledged(ds, "INSERT INTO t VALUES (" + id + ")")).isTrue();
        }
    }

    /** A partner timeout that a restart never reaches, and the restarts the monitor compared, in {@code restarts}. */
    private static LockstepConfig noticingRestarts(TwoNodes.Pair pair, Duration heartbeat, List<LockstepEvent.MirrorRestarted> restarts) {
        return pair.config().witness(witness.config()).partnerTimeout(Duration.ofSeconds(20))
                .remoteCallTimeout(Duration.ofSeconds(1)).heartbeatInterval(heartbeat).listener(e -> {
                    if (e instanceof LockstepEvent.MirrorRestarted r) {
                        restarts.add(r);
                    }
                }).build();
    }

    /**
     * Restarts the mirror's server while its link is silent, so that no probe sees it refuse a
     * connection (which counts it failed at once): to the coordinator it only went quiet, as when
     * a restart falls between two probes.
     */
    private static void restartTheMirrorBehindASilentLink(LockstepDataSource ds) {
        nodes.b().proxy().blackhole();
        try {
            nodes.b().stop();
            nodes.b().restart();
            await().atMost(Duration.ofSeconds(20)).until(() -> ds.partnership().status().mirrorHealth() == PartnerHealth.SUSPECT);
        } finally {
            nodes.b().proxy().heal();
        }
    }

    private static String incarnation(TwoNodes.Pair pair) throws SQLException {
        try (Connection m = pair.mirror()) {
            return (String) TwoNodes.value(m, "SELECT extract(epoch FROM pg_postmaster_start_time())::text || ' ' || oid"
                    + " FROM pg_database WHERE datname = current_database()");
        }
    }

    /** Rows 6-10 and the records of their commits gone from the mirror, as from an older copy. */
    private static void removeNewestFiveFromTheMirror(TwoNodes.Pair pair) throws SQLException {
        try (Connection m = pair.mirror(); Statement ms = m.createStatement()) {
            List<List<Object>> newest = rows(m, "SELECT epoch, seq FROM lockstep.journal WHERE epoch > 0"
                    + " ORDER BY epoch DESC, seq DESC LIMIT 6");
            ms.execute("SET session_replication_role = replica");
            ms.execute("SET lockstep.applier = on");
            ms.execute("DELETE FROM t WHERE id > 5");
            ms.execute("DELETE FROM lockstep.journal WHERE epoch > 0 AND (epoch, seq) > (" + newest.get(5).get(0) + ", "
                    + newest.get(5).get(1) + ")");
        }
    }

    /** The same without a witness: the principal records its mirror behind. */
    @Test
    void withoutAWitnessAMirrorPutBackToAnOlderBackupIsCaughtUpAtTheNextStart() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("putbacknw");
        LockstepConfig config = pair.config().partnerTimeout(Duration.ofSeconds(2)).heartbeatInterval(Duration.ofMillis(200)).build();
        putMirrorBackToAnOlderBackup(pair, config, false);
        try (LockstepDataSource ds = LockstepDataSource.start(config); Connection p = pair.principal(); Connection m = pair.mirror()) {
            await().ignoreExceptions().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(100))
                    .until(() -> ds.partnership().status().state() == MirroringState.SYNCHRONIZED
                            && ds.partnership().lastCatchUp().isPresent());
            assertThat(ds.partnership().lastCatchUp().orElseThrow().replayed()).isEqualTo(5);
            assertThat(rows(m, "SELECT id FROM t ORDER BY id")).hasSize(10).isEqualTo(rows(p, "SELECT id FROM t ORDER BY id"));
            assertThat(ds.partnership().verify().identical()).isTrue();
        }
    }

    /**
     * As above, after retention deleted every record on the principal (its journal is empty): the
     * last record it deleted is the one the mirror must hold or have trimmed past. The put-back
     * mirror has neither, and the records it lacks are gone, so it is seeded.
     */
    @Test
    void aMirrorPutBackToAnOlderBackupAfterRetentionEmptiedThePrincipalsJournalIsSeededAtTheNextStart() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("putbacktrim");
        putMirrorBackToAnOlderBackup(pair, config(pair), true);
        try (LockstepDataSource ds = LockstepDataSource.start(config(pair)); Connection p = pair.principal();
             Connection m = pair.mirror()) {
            await().ignoreExceptions().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(100))
                    .until(() -> record(pair).state() == MirroringState.SYNCHRONIZED && ds.partnership().lastCatchUp().isPresent());
            assertThat(ds.partnership().lastCatchUp().orElseThrow().seeded()).isTrue();
            assertThat(rows(m, "SELECT id FROM t ORDER BY id")).hasSize(10).isEqualTo(rows(p, "SELECT id FROM t ORDER BY id"));
        }
        assertThat(witness.store().history(pair.partnership())).extracting(WitnessStore.Transition::reason)
                .anyMatch(r -> r.contains("(trimmed on the principal) that principal node-a committed"));
    }

    /** A healthy mirror that retention trimmed like the principal is left SYNCHRONIZED by the start's check. */
    @Test
    void aMirrorTrimmedLikeThePrincipalStaysSynchronizedAtTheNextStart() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("trimmedboth");
        try (LockstepDataSource ds = LockstepDataSource.start(config(pair))) {
            assertThat(TwoNodes.acknowledged(ds, "CREATE TABLE t (id bigint PRIMARY KEY)")).isTrue();
            for (int id = 1; id <= 3; id++) {
                assertThat(TwoNodes.acknowledged(ds, "INSERT INTO t VALUES (" + id + ")")).isTrue();
            }
        }
        try (Connection p = pair.principal(); Connection m = pair.mirror()) {
            String pastNewest = pastNewestRecord(p);
            TwoNodes.value(p, "SELECT lockstep.trim_journal(" + pastNewest + ")");
            TwoNodes.value(m, "SELECT lockstep.trim_journal(" + pastNewest + ")");
            assertThat(TwoNodes.value(m, "SELECT count(*) FROM lockstep.journal WHERE epoch > 0")).isEqualTo(0L);
        }
        try (LockstepDataSource ds = LockstepDataSource.start(config(pair))) {
            // The check runs inside start(): had it found a gap, the record would be behind already.
            assertThat(record(pair).state()).isEqualTo(MirroringState.SYNCHRONIZED);
            assertThat(TwoNodes.acknowledged(ds, "INSERT INTO t VALUES (4)")).isTrue();
            assertThat(ds.partnership().verify().identical()).isTrue();
        }
        assertThat(witness.store().history(pair.partnership())).extracting(WitnessStore.Transition::reason)
                .noneMatch(r -> r.contains("lacks journal record"));
    }

    /** "epoch, seq + 1" of the node's newest record: trimming to it deletes every record. */
    private static String pastNewestRecord(Connection node) throws SQLException {
        List<Object> newest = rows(node, "SELECT epoch, seq FROM lockstep.journal WHERE epoch > 0"
                + " ORDER BY epoch DESC, seq DESC LIMIT 1").get(0);
        return newest.get(0) + ", " + ((Long) newest.get(1) + 1);
    }

    /**
     * Rows 1-10 committed through a data source, then rows 6-10 and their records gone from the
     * mirror; with {@code trimmedPrincipal}, retention deleted every record on the principal first.
     */
    private static void putMirrorBackToAnOlderBackup(TwoNodes.Pair pair, LockstepConfig config, boolean trimmedPrincipal)
            throws SQLException {
        try (LockstepDataSource ds = LockstepDataSource.start(config)) {
            committedRowsOneToTen(ds);
        }
        if (trimmedPrincipal) {
            try (Connection p = pair.principal()) {
                TwoNodes.value(p, "SELECT lockstep.trim_journal(" + pastNewestRecord(p) + ")");
            }
        }
        removeNewestFiveFromTheMirror(pair);
    }

    /**
     * {@code seedingTimeout} bounds the whole copy, not each statement: on a new mirror where every
     * table takes a while to create, each statement finishes well within the limit but the seed
     * does not; it is cancelled, nothing is left on the mirror, {@code CatchUpFailed} reports 57014,
     * and once the mirror is fast again the next attempt seeds it.
     */
    @Test
    void seedingTimeoutBoundsTheWholeCopyNotEachStatement() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("seedtime");
        LockstepConfig first = pair.config().witness(witness.config()).partnerTimeout(Duration.ofSeconds(2))
                .heartbeatInterval(Duration.ofMillis(200)).seedingTimeout(Duration.ofSeconds(1)).build();
        fourTables(first);
        // 0.4 s for each table created in public: four take 1.6 s, each well under the limit.
        String fresh = slowMirror("seedtime_fresh");
        LockstepConfig second = first.toBuilder()
                .mirror(NodeConfig.of("node-b", nodes.b().jdbcUrl(fresh), nodes.b().user(), nodes.b().password())).build();
        List<LockstepEvent.CatchUpFailed> failures = new CopyOnWriteArrayList<>();
        try (LockstepDataSource ds = LockstepDataSource.start(second.toBuilder().listener(e -> {
            if (e instanceof LockstepEvent.CatchUpFailed f) {
                failures.add(f);
            }
        }).build()); Connection m = nodes.b().connectDirect(fresh); Statement ms = m.createStatement()) {
            await().atMost(Duration.ofSeconds(30)).until(() -> !failures.isEmpty());
            assertThat(failures.get(0).sqlState()).isEqualTo("57014");
            assertThat(failures.get(0).message()).contains("seeding mirror node node-b did not finish within seedingTimeout (PT1S),"
                    + " nothing changed on it");
            assertThat(TwoNodes.value(m, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).isEqualTo(0L);

            ms.execute("DROP EVENT TRIGGER slow_ddl");
            // The catch-up records SYNCHRONIZED before it reports its result.
            await().ignoreExceptions().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(100))
                    .until(() -> record(pair).state() == MirroringState.SYNCHRONIZED && ds.partnership().lastCatchUp().isPresent());
            assertThat(ds.partnership().lastCatchUp().orElseThrow().seeded()).isTrue();
            assertThat(ds.partnership().verify().identical()).isTrue();
        }
    }

    /**
     * Retention trimmed the principal but not the mirror (the mirror went away between the two):
     * the mirror still holds every record the principal deleted, so it is caught up, not seeded.
     */
    @Test
    void aMirrorThatHoldsEveryRecordThePrincipalTrimmedIsCaughtUpNotSeeded() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("halftrim");
        try (LockstepDataSource ds = LockstepDataSource.start(config(pair)); Connection p = pair.principal();
             Connection m = pair.mirror(); Statement ps = p.createStatement()) {
            assertThat(TwoNodes.acknowledged(ds, "CREATE TABLE t (id bigint PRIMARY KEY)")).isTrue();
            for (int id = 1; id <= 10; id++) {
                assertThat(TwoNodes.acknowledged(ds, "INSERT INTO t VALUES (" + id + ")")).isTrue();
            }
            List<Object> newest = rows(p, "SELECT epoch, seq FROM lockstep.journal WHERE epoch > 0"
                    + " ORDER BY epoch DESC, seq DESC LIMIT 1").get(0);
            nodes.b().proxy().partition();
            try {
                await().ignoreExceptions().atMost(Duration.ofSeconds(30)).until(() -> record(pair).state() == MirroringState.DISCONNECTED);
                // As retention bounds it: one past the newest record both held, so that record goes too.
                ps.execute("SELECT lockstep.trim_journal(" + newest.get(0) + ", " + newest.get(1) + " + 1)");
                for (int id = 11; id <= 15; id++) {
                    assertThat(TwoNodes.acknowledged(ds, "INSERT INTO t VALUES (" + id + ")")).isTrue();
                }
            } finally {
                nodes.b().proxy().heal();
            }
            // The catch-up records SYNCHRONIZED before it reports its result.
            await().ignoreExceptions().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(100))
                    .until(() -> record(pair).state() == MirroringState.SYNCHRONIZED && ds.partnership().lastCatchUp().isPresent());
            assertThat(ds.partnership().lastCatchUp().orElseThrow().seeded()).isFalse();
            assertThat(rows(m, "SELECT id FROM t ORDER BY id")).hasSize(15).isEqualTo(rows(p, "SELECT id FROM t ORDER BY id"));
        }
    }

    /**
     * A coordinator starts with a new, blank mirror (a replaced database under the same node name,
     * which the witness still records SYNCHRONIZED) while the partnership's catch-up claim is held
     * (by another coordinator's journal trim or catch-up). Held for longer than remoteCallTimeout,
     * the start is refused and nothing changes; held for a moment, the start waits for it, then
     * enrols and seeds the mirror. Before, it started without enrolling it: the empty mirror
     * counted as synchronized.
     */
    @Test
    void aCoordinatorStartingWhileTheCatchUpClaimIsHeldWaitsForItOrRefusesToStart() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("seedclaim");
        LockstepConfig first = config(pair);
        fourTables(first);
        String fresh = nodes.b().createDatabase("seedclaim_fresh");
        LockstepConfig second = first.toBuilder()
                .mirror(NodeConfig.of("node-b", nodes.b().jdbcUrl(fresh), nodes.b().user(), nodes.b().password())).build();
        CompletableFuture<LockstepDataSource> starting;
        try (Connection holder = pair.principal(); Connection m = nodes.b().connectDirect(fresh)) {
            assertThat(JournalReplay.claim(holder, pair.partnership())).isTrue();
            LockstepConfig impatient = second.toBuilder().remoteCallTimeout(Duration.ofMillis(300)).build();
            assertThatThrownBy(() -> LockstepDataSource.start(impatient)).isInstanceOf(SQLException.class)
                    .hasMessageContaining("mirror node-b is a new, blank node").hasMessageContaining("catch-up claim")
                    .extracting(e -> ((SQLException) e).getSQLState()).isEqualTo("55000");
            assertThat(SeedMark.blank(m)).isTrue();
            assertThat(record(pair).state()).isEqualTo(MirroringState.SYNCHRONIZED);

            starting = CompletableFuture.supplyAsync(() -> {
                try {
                    return LockstepDataSource.start(second);
                } catch (SQLException e) {
                    throw new CompletionException(e);
                }
            });
            await().atMost(Duration.ofSeconds(20)).until(() -> starting.isDone() || claimAwaited(pair));
            assertThat(starting).as("the start waits for the claim").isNotDone();
        }
        try (LockstepDataSource ds = starting.get(60, TimeUnit.SECONDS)) {
            await().ignoreExceptions().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(100))
                    .until(() -> record(pair).state() == MirroringState.SYNCHRONIZED && ds.partnership().lastCatchUp().isPresent()
                            && ds.partnership().verify().identical());
            assertThat(ds.partnership().lastCatchUp().orElseThrow().seeded()).isTrue();
        }
    }

    private static boolean claimAwaited(TwoNodes.Pair pair) throws SQLException {
        try (Connection p = pair.principal()) {
            return (Boolean) TwoNodes.value(p, "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted)");
        }
    }

    /** Through a partnership of the configuration: tables t1 to t4 of ten rows each. */
    private static void fourTables(LockstepConfig config) throws SQLException {
        try (LockstepDataSource ds = LockstepDataSource.start(config); Connection c = ds.getConnection();
             Statement st = c.createStatement()) {
            for (int i = 1; i <= 4; i++) {
                st.execute("CREATE TABLE t" + i + " (id int PRIMARY KEY)");
                st.execute("INSERT INTO t" + i + " SELECT generate_series(1, 10)");
            }
        }
    }

    /** A new, empty database on node b where each table created in public takes 0.4 s more. */
    private static String slowMirror(String name) throws SQLException {
        String fresh = nodes.b().createDatabase(name);
        try (Connection m = nodes.b().connectDirect(fresh); Statement ms = m.createStatement()) {
            ms.execute("CREATE FUNCTION slow_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN"
                    + " IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE TABLE'"
                    + " AND schema_name = 'public') THEN PERFORM pg_sleep(0.4); END IF; END $$");
            ms.execute("CREATE EVENT TRIGGER slow_ddl ON ddl_command_end EXECUTE FUNCTION slow_ddl()");
            // The seed runs as replica, where ordinary event triggers do not fire.
            ms.execute("ALTER EVENT TRIGGER slow_ddl ENABLE ALWAYS");
        }
        return fresh;
    }

    /**
     * A second coordinator starts while the first seeds a new mirror: it leaves enrolment and
     * seeding to the first instead of marking the mirror again, starts, and the mirror is seeded
     * once.
     */
    @Test
    void aCoordinatorStartingWhileAnotherSeedsTheMirrorLeavesTheSeedToIt() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("seedtwo");
        LockstepConfig first = config(pair);
        fourTables(first);
        String fresh = slowMirror("seedtwo_fresh");
        LockstepConfig seeding = first.toBuilder().coordinatorId("seeding")
                .mirror(NodeConfig.of("node-b", nodes.b().jdbcUrl(fresh), nodes.b().user(), nodes.b().password())).build();
        try (LockstepDataSource ds = LockstepDataSource.start(seeding); Connection m = nodes.b().connectDirect(fresh)) {
            TwoNodes.awaitSleepingBackend(m);
            try (LockstepDataSource later = LockstepDataSource.start(seeding.toBuilder().coordinatorId("later").build())) {
                await().ignoreExceptions().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(100))
                        .until(() -> record(pair).state() == MirroringState.SYNCHRONIZED);
                assertThat(later.partnership().mirrorNeedsSeeding()).isFalse();
                assertThat(witness.store().mirrorNeedsSeeding(pair.partnership())).isFalse();
                // Until its monitor sees SYNCHRONIZED too, its view is stale and a commit is refused with 40001.
                await().atMost(Duration.ofSeconds(10))
                        .until(() -> TwoNodes.acknowledged(later, "INSERT INTO t1 VALUES (11) ON CONFLICT DO NOTHING"));
                assertThat(TwoNodes.value(m, "SELECT count(*) FROM t1")).isEqualTo(11L);
                assertThat(ds.partnership().verify().identical()).isTrue();
            }
        }
        assertThat(witness.store().history(pair.partnership())).extracting(WitnessStore.Transition::reason)
                .filteredOn(r -> r.equals("mirror node-b is a new, blank node: seeding it")).hasSize(1);
    }
}
