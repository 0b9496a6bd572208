package dev.lockstep.config;

import dev.lockstep.LockstepConfig;
import dev.lockstep.NodeConfig;
import dev.lockstep.core.OperatingMode;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.Properties;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class LockstepConfigTest {

    private static final NodeConfig A = NodeConfig.of("a", "jdbc:postgresql://127.0.0.1:5432/x", "u", "secret-a");
    private static final NodeConfig B = NodeConfig.of("b", "jdbc:postgresql://127.0.0.1:5433/x", "u", "secret-b");

    private static LockstepConfig.Builder valid() {
        return LockstepConfig.builder().partnership("orders").principal(A).mirror(B);
    }

    @Test
    void defaultsAreThoseDocumented() {
        LockstepConfig c = valid().build();
        assertThat(c.poolSize()).isEqualTo(10);
        assertThat(c.remoteCallTimeout()).isEqualTo(Duration.ofSeconds(10));
        assertThat(c.inDoubtGrace()).isEqualTo(Duration.ofSeconds(60));
        assertThat(c.coordinatorId()).matches("[a-z0-9_-]{1,63}");
    }

    @Test
    void eachInvalidSettingIsNamedWithRuleAndValue() {
        assertThatThrownBy(() -> valid().partnership("Bad Name").build())
                .hasMessageContaining("'partnership'").hasMessageContaining("Bad Name");
        assertThatThrownBy(() -> valid().principal(null).build()).hasMessageContaining("'principal'").hasMessageContaining("required");
        assertThatThrownBy(() -> valid().mirror(null).build()).hasMessageContaining("'mirror'");
        assertThatThrownBy(() -> valid().poolSize(0).build()).hasMessageContaining("'poolSize'").hasMessageContaining("got 0");
        assertThatThrownBy(() -> valid().remoteCallTimeout(Duration.ofMillis(5)).build())
                .hasMessageContaining("'remoteCallTimeout'").hasMessageContaining("PT0.005S");
        assertThatThrownBy(() -> valid().inDoubtGrace(Duration.ofSeconds(34)).build())
                .hasMessageContaining("'inDoubtGrace'").hasMessageContaining("3 x remoteCallTimeout").hasMessageContaining("PT35S")
                .hasMessageContaining("answer within remoteCallTimeout");
        assertThat(valid().inDoubtGrace(Duration.ofSeconds(35)).build().inDoubtGrace()).isEqualTo(Duration.ofSeconds(35));
        assertThatThrownBy(() -> valid().remoteCallTimeout(Duration.ofMillis(500)).connectTimeout(Duration.ofMillis(500))
                .inDoubtGrace(Duration.ofSeconds(3)).build()).hasMessageContaining("PT3.5S");
        assertThatThrownBy(() -> valid().coordinatorId("x:y").build()).hasMessageContaining("'coordinatorId'");
    }

    @Test
    void journalRetentionAndSeedingSettingsAreValidatedAndRead() {
        LockstepConfig d = valid().build();
        assertThat(d.journalLimitRecords()).isEqualTo(10_000_000L);
        assertThat(d.journalLimitAge()).isNull();
        assertThat(d.journalCheckInterval()).isEqualTo(Duration.ofMinutes(1));
        assertThat(d.seedingTimeout()).isEqualTo(Duration.ofHours(1));
        assertThatThrownBy(() -> valid().journalLimitRecords(9).build())
                .hasMessageContaining("'journalLimitRecords'").hasMessageContaining("at least 10").hasMessageContaining("got 9");
        assertThatThrownBy(() -> valid().journalLimitAge(Duration.ofMillis(10)).build())
                .hasMessageContaining("'journalLimitAge'").hasMessageContaining("PT0.01S");
        assertThatThrownBy(() -> valid().journalCheckInterval(Duration.ZERO).build()).hasMessageContaining("'journalCheckInterval'");
        assertThatThrownBy(() -> valid().seedingTimeout(null).build()).hasMessageContaining("'seedingTimeout'");
        assertThatThrownBy(() -> valid().journalRetentionListener(null).build()).hasMessageContaining("'journalRetentionListener'");
        java.util.Properties p = new java.util.Properties();
        p.setProperty("partnership", "orders");
        for (String role : new String[] {"principal", "mirror"}) {
            NodeConfig n = role.equals("principal") ? A : B;
            p.setProperty(role + ".name", n.name());
            p.setProperty(role + ".url", n.jdbcUrl());
            p.setProperty(role + ".user", n.user());
        }
        p.setProperty("journalLimitRecords", "5000");
        p.setProperty("journalLimitAge", "PT6H");
        p.setProperty("journalCheckInterval", "PT5S");
        p.setProperty("seedingTimeout", "PT2H");
        LockstepConfig c = LockstepConfig.fromProperties(p);
        assertThat(c.journalLimitRecords()).isEqualTo(5000L);
        assertThat(c.journalLimitAge()).isEqualTo(Duration.ofHours(6));
        assertThat(c.journalCheckInterval()).isEqualTo(Duration.ofSeconds(5));
        assertThat(c.seedingTimeout()).isEqualTo(Duration.ofHours(2));
        assertThat(c.toBuilder().build().journalLimitAge()).isEqualTo(Duration.ofHours(6));
        p.setProperty("journalLimitRecords", "lots");
        assertThatThrownBy(() -> LockstepConfig.fromProperties(p)).hasMessageContaining("'journalLimitRecords'").hasMessageContaining("lots");
    }

    @Test
    void witnessModeAndPartnerTimeoutAreValidated() {
        NodeConfig w = NodeConfig.of("w", "jdbc:postgresql://127.0.0.1:5434/w", "u", "secret-w");
        LockstepConfig withWitness = valid().witness(w).build();
        assertThat(withWitness.mode()).isEqualTo(OperatingMode.HIGH_SAFETY_AUTOMATIC_FAILOVER);
        assertThat(withWitness.partnerTimeout()).isEqualTo(Duration.ofSeconds(10));
        assertThat(withWitness.heartbeatInterval()).isEqualTo(Duration.ofSeconds(1));
        assertThat(withWitness.toString()).contains("witness=").doesNotContain("secret-w");
        assertThat(valid().build().mode()).isEqualTo(OperatingMode.HIGH_SAFETY);
        assertThatThrownBy(() -> valid().mode(OperatingMode.HIGH_SAFETY_AUTOMATIC_FAILOVER).build())
                .hasMessageContaining("'mode'").hasMessageContaining("needs a witness");
        assertThatThrownBy(() -> valid().witness(w).mode(OperatingMode.HIGH_PERFORMANCE).build())
                .hasMessageContaining("'mode'").hasMessageContaining("HIGH_PERFORMANCE");
        assertThatThrownBy(() -> valid().witness(NodeConfig.of("a", w.jdbcUrl(), "u", "p")).build())
                .hasMessageContaining("'witness.name'");
        assertThatThrownBy(() -> valid().partnerTimeout(Duration.ofMillis(1499)).heartbeatInterval(Duration.ofMillis(500)).build())
                .hasMessageContaining("'partnerTimeout'").hasMessageContaining("3 x heartbeatInterval").hasMessageContaining("PT1.499S");
        assertThat(valid().partnerTimeout(Duration.ofMillis(1500)).heartbeatInterval(Duration.ofMillis(500)).build().partnerTimeout())
                .isEqualTo(Duration.ofMillis(1500));
        assertThatThrownBy(() -> valid().heartbeatInterval(Duration.ofMillis(1)).build()).hasMessageContaining("'heartbeatInterval'");
        Properties p = new Properties();
        p.setProperty("partnership", "orders");
        for (NodeConfig n : new NodeConfig[] {A, B, w}) {
            String role = n == A ? "principal" : n == B ? "mirror" : "witness";
            p.setProperty(role + ".name", n.name());
            p.setProperty(role + ".url", n.jdbcUrl());
            p.setProperty(role + ".user", "u");
        }
        p.setProperty("partnerTimeout", "PT4S");
        p.setProperty("mode", "HIGH_SAFETY");
        LockstepConfig read = LockstepConfig.fromProperties(p);
        assertThat(read.witness().name()).isEqualTo("w");
        assertThat(read.mode()).isEqualTo(OperatingMode.HIGH_SAFETY);
        assertThat(read.partnerTimeout()).isEqualTo(Duration.ofSeconds(4));
        p.setProperty("mode", "FAST");
        assertThatThrownBy(() -> LockstepConfig.fromProperties(p)).hasMessageContaining("'mode'").hasMessageContaining("FAST");
    }

    @Test
    void theSameNodeNamedTwiceIsRefused() {
        assertThatThrownBy(() -> valid().mirror(NodeConfig.of("b", A.jdbcUrl(), "u", "p")).build())
                .hasMessageContaining("same node named twice");
        assertThatThrownBy(() -> valid().mirror(NodeConfig.of("a", B.jdbcUrl(), "u", "p")).build())
                .hasMessageContaining("'mirror.name'");
    }

    @Test
    void nodeConfigValidatesAndHidesThePassword() {
        assertThatThrownBy(() -> NodeConfig.of("a", "jdbc:mysql://x/y", "u", "p")).hasMessageContaining("jdbc:postgresql:");
        assertThatThrownBy(() -> NodeConfig.of("A B", "jdbc:postgresql://x/y", "u", "p")).hasMessageContaining("node name");
        assertThat(A.toString()).doesNotContain("secret-a").contains("****");
        assertThat(valid().build().toString()).doesNotContain("secret-a").doesNotContain("secret-b");
    }

    @Test
    void readsPropertiesAndNamesTheMissingOne() {
        Properties p = new Properties();
        p.setProperty("partnership", "orders");
        p.setProperty("principal.name", "a");
        p.setProperty("principal.url", A.jdbcUrl());
        p.setProperty("principal.user", "u");
        p.setProperty("mirror.name", "b");
        p.setProperty("mirror.url", B.jdbcUrl());
        p.setProperty("mirror.user", "u");
        p.setProperty("poolSize", "4");
        p.setProperty("remoteCallTimeout", "PT3S");
        LockstepConfig c = LockstepConfig.fromProperties(p);
        assertThat(c.poolSize()).isEqualTo(4);
        assertThat(c.remoteCallTimeout()).isEqualTo(Duration.ofSeconds(3));

        p.remove("mirror.url");
        assertThatThrownBy(() -> LockstepConfig.fromProperties(p)).hasMessageContaining("'mirror.url'").hasMessageContaining("missing");
        p.setProperty("mirror.url", B.jdbcUrl());
        p.setProperty("poolSize", "many");
        assertThatThrownBy(() -> LockstepConfig.fromProperties(p)).hasMessageContaining("'poolSize'").hasMessageContaining("many");
        p.setProperty("poolSize", "4");
        p.setProperty("inDoubtGrace", "30 seconds");
        assertThatThrownBy(() -> LockstepConfig.fromProperties(p)).hasMessageContaining("'inDoubtGrace'").hasMessageContaining("ISO-8601");
    }
}
