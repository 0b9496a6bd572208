package dev.lockstep.cli;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

class DemoCommandTest {

    @Test
    void demoCommitsEveryTransferAndLeavesBothNodesIdentical() throws Exception {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8);

        DemoCommand.Summary summary = new DemoCommand(new DemoCommand.Options(300, 8, 1), out).run();

        assertThat(summary.committed()).isEqualTo(300);
        assertThat(summary.failed()).isZero();
        assertThat(summary.mirrorSettled()).isTrue();
        assertThat(summary.verifyIdentical()).isTrue();
        assertThat(summary.checksumsMatch()).isTrue();
        for (String table : DemoCommand.TABLES) {
            List<NodeInspector.TableChecksum> sums = summary.checksums().stream().filter(c -> c.table().equals(table)).toList();
            assertThat(sums).extracting(NodeInspector.TableChecksum::node)
                    .containsExactly(DemoCommand.PRINCIPAL, DemoCommand.MIRROR);
            assertThat(sums.get(0).rows()).isEqualTo(sums.get(1).rows());
            assertThat(sums.get(0).digest()).isEqualTo(sums.get(1).digest());
        }
        assertThat(summary.checksums()).filteredOn(c -> c.table().equals("public.transfers"))
                .allSatisfy(c -> assertThat(c.rows()).isEqualTo(300));
        assertThat(summary.totalBalances()).containsOnlyKeys(DemoCommand.PRINCIPAL, DemoCommand.MIRROR)
                .containsValues(DemoCommand.ACCOUNTS * DemoCommand.OPENING_BALANCE);
        assertThat(summary.identical()).isTrue();
        assertThat(summary.exitCode()).isZero();
        assertThat(bytes.toString(StandardCharsets.UTF_8))
                .contains("demo: 300 transactions committed, nodes identical: true");
    }
}
