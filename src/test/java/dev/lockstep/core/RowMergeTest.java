package dev.lockstep.core;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static dev.lockstep.core.RowDifference.Kind.CHANGED;
import static dev.lockstep.core.RowDifference.Kind.EXTRA_ON_MIRROR;
import static dev.lockstep.core.RowDifference.Kind.MISSING_ON_MIRROR;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class RowMergeTest {

    private static RowMerge.KeyedHash row(String key, String hash) {
        return new RowMerge.KeyedHash(key, hash);
    }

    private static List<RowDifference> merge(List<RowMerge.KeyedHash> principal, List<RowMerge.KeyedHash> mirror) {
        List<RowDifference> out = new ArrayList<>();
        long n = RowMerge.merge(principal.iterator(), mirror.iterator(), out::add);
        assertThat(n).isEqualTo(out.size());
        return out;
    }

    @Test
    void identicalStreamsHaveNoDifferences() {
        List<RowMerge.KeyedHash> rows = List.of(row("a", "1"), row("b", "2"));
        assertThat(merge(rows, rows)).isEmpty();
        assertThat(merge(List.of(), List.of())).isEmpty();
    }

    @Test
    void eachKindIsNamedInKeyOrder() {
        assertThat(merge(List.of(row("a", "1"), row("b", "2"), row("d", "4"), row("f", "6")),
                List.of(row("b", "x"), row("c", "3"), row("d", "4"), row("g", "7"))))
                .containsExactly(new RowDifference("a", MISSING_ON_MIRROR), new RowDifference("b", CHANGED),
                        new RowDifference("c", EXTRA_ON_MIRROR), new RowDifference("f", MISSING_ON_MIRROR),
                        new RowDifference("g", EXTRA_ON_MIRROR));
    }

    @Test
    void oneSideEmpty() {
        assertThat(merge(List.of(row("a", "1")), List.of())).containsExactly(new RowDifference("a", MISSING_ON_MIRROR));
        assertThat(merge(List.of(), List.of(row("a", "1")))).containsExactly(new RowDifference("a", EXTRA_ON_MIRROR));
    }

    @Test
    void keysCompareByCodePointLikeUtf8Bytes() {
        String bmpHigh = "\uFF21";            // U+FF21, three UTF-8 bytes
        String supplementary = "\uD83D\uDE00"; // U+1F600, four UTF-8 bytes, two UTF-16 units below U+E000
        assertThat(RowMerge.KEY_ORDER.compare(bmpHigh, supplementary)).isNegative();
        assertThat(RowMerge.KEY_ORDER.compare("a", "ab")).isNegative();
        assertThat(RowMerge.KEY_ORDER.compare("ab", "ab")).isZero();
        assertThat(merge(List.of(row(bmpHigh, "1"), row(supplementary, "2")), List.of(row(bmpHigh, "1"), row(supplementary, "2"))))
                .isEmpty();
    }

    @Test
    void aStreamOutOfOrderIsRefused() {
        assertThatThrownBy(() -> merge(List.of(row("b", "1"), row("a", "1")), List.of()))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("principal");
    }
}
