package dev.lockstep.it;

import dev.lockstep.LockstepDataSource;
import dev.lockstep.commit.CommitObserver;
import dev.lockstep.core.CommitStep;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;

import static dev.lockstep.it.TwoNodes.lockstepPrepared;
import static dev.lockstep.it.TwoNodes.rows;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/**
 * I1 and I2: the coordinator dies at each step of the two-phase commit; after in-doubt
 * resolution by a new coordinator both nodes are identical, nothing Lockstep prepared is left
 * and every acknowledged transaction is on both.
 */
class CoordinatorCrashTest extends OnTwoNodes {

    @ParameterizedTest
    @EnumSource(CommitStep.class)
    void crashAtEachStepIsSettledByRule(CommitStep crashStep) throws Exception {
        TwoNodes.Pair pair = nodes.newPair("crash");
        AtomicBoolean armed = new AtomicBoolean(false);
        List<String> crashedGid = new ArrayList<>();
        CommitObserver crashOnce = (step, gid) -> {
            if (step == crashStep && armed.compareAndSet(true, false)) {
                crashedGid.add(gid);
                throw new CommitObserver.SimulatedCrash("coordinator crashed after " + step);
            }
        };
        try (LockstepDataSource ds = LockstepDataSource.start(pair.config().commitObserver(crashOnce).build());
             Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE ledger (id int PRIMARY KEY, note text)");
            for (int i = 1; i <= 5; i++) {
                st.executeUpdate("INSERT INTO ledger VALUES (" + i + ", 'acknowledged')");
            }
            armed.set(true);
            assertThatThrownBy(() -> st.executeUpdate("INSERT INTO ledger VALUES (100, 'in flight')"))
                    .isInstanceOf(CommitObserver.SimulatedCrash.class);
        }
        // A new coordinator (another id) settles what the dead one left.
        try (LockstepDataSource recovered = LockstepDataSource.start(pair.config().build());
             Connection p = pair.principal(); Connection m = pair.mirror()) {
            await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(200)).untilAsserted(() -> {
                assertThat(lockstepPrepared(p)).isEmpty();
                assertThat(lockstepPrepared(m)).isEmpty();
            });
            List<List<Object>> principalRows = rows(p, "SELECT * FROM ledger ORDER BY id");
            assertThat(rows(m, "SELECT * FROM ledger ORDER BY id")).isEqualTo(principalRows);
            assertThat(principalRows).filteredOn(r -> "acknowledged".equals(r.get(1))).hasSize(5);
            boolean inFlightSurvives = principalRows.stream().anyMatch(r -> r.get(0).equals(100));
            // Prepared on the principal alone: rolled back. Prepared on both: committed.
            assertThat(inFlightSurvives).as("transaction %s after a crash at %s", crashedGid, crashStep)
                    .isEqualTo(crashStep != CommitStep.PRINCIPAL_PREPARED);
            assertThat(recovered.partnership().verify().identical()).isTrue();
            assertWritesStillWork(recovered);
        }
    }

    @org.junit.jupiter.api.Test
    void aCoordinatorRestartedWithAFixedIdNeverReusesAGlobalTransactionId() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("restart");
        for (int start = 0; start < 2; start++) {
            try (LockstepDataSource ds = LockstepDataSource.start(pair.config().coordinatorId("fixed").build());
                 Connection c = ds.getConnection(); Statement st = c.createStatement()) {
                st.execute("CREATE TABLE IF NOT EXISTS ledger (id int PRIMARY KEY, note text)");
                st.executeUpdate("INSERT INTO ledger VALUES (" + start + ", 'start " + start + "')");
            }
        }
        try (Connection m = pair.mirror()) {
            assertThat(rows(m, "SELECT id FROM ledger ORDER BY id")).containsExactly(List.of(0), List.of(1));
        }
    }

    private static void assertWritesStillWork(LockstepDataSource ds) throws SQLException {
        try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
            st.executeUpdate("INSERT INTO ledger VALUES (200, 'after recovery')");
        }
        assertThat(ds.partnership().verify().identical()).isTrue();
    }
}
