package dev.lockstep.core;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class GidTest {

    @Test
    void roundTripsThroughItsTextForm() {
        Gid gid = new Gid("orders", 7, "c0ffee12", 42);
        assertThat(gid.toString()).isEqualTo("lockstep:orders:7:c0ffee12:42");
        assertThat(Gid.parseOrNull(gid.toString())).isEqualTo(gid);
        assertThat(gid.toString()).startsWith(Gid.prefixOf("orders"));
    }

    @Test
    void foreignPreparedTransactionsAreNotOurs() {
        assertThat(Gid.parseOrNull("my-app-xa-123")).isNull();
        assertThat(Gid.parseOrNull("lockstep:orders:x:c:1")).isNull();
        assertThat(Gid.parseOrNull("lockstep:orders:1:c:1:extra")).isNull();
        assertThat(Gid.parseOrNull("lockstep:Orders:1:c:1")).isNull();
        assertThat(Gid.parseOrNull("other:orders:1:c:1")).isNull();
    }

    @Test
    void rejectsNamesThatCouldBreakTheFormat() {
        assertThatThrownBy(() -> new Gid("a:b", 1, "c", 1)).hasMessageContaining("partnership");
        assertThatThrownBy(() -> new Gid("a", 0, "c", 1)).hasMessageContaining("epoch");
        assertThatThrownBy(() -> new Gid("a", 1, "C'", 1)).hasMessageContaining("coordinator");
        assertThat(Gid.isValidName("x".repeat(63))).isTrue();
        assertThat(Gid.isValidName("x".repeat(64))).isFalse();
    }
}
