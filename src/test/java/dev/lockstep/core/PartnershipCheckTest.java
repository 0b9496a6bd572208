package dev.lockstep.core;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

class PartnershipCheckTest {

    private static NodeView view(String node, NodeRole role, long epoch) {
        return new NodeView(node, "p", role, epoch);
    }

    @Test
    void consistentPairAgreesOnItsEpoch() {
        assertThat(PartnershipCheck.problems("p", view("a", NodeRole.PRINCIPAL, 3), view("b", NodeRole.MIRROR, 3))).isEmpty();
        assertThat(PartnershipCheck.agreedEpoch("p", view("a", NodeRole.PRINCIPAL, 3), view("b", NodeRole.MIRROR, 3))).contains(3L);
    }

    @Test
    void twoPrincipalsAreRefused() {
        assertThat(PartnershipCheck.problems("p", view("a", NodeRole.PRINCIPAL, 1), view("b", NodeRole.PRINCIPAL, 1)))
                .singleElement().asString().contains("node b is configured as mirror but is principal at epoch 1");
    }

    @Test
    void epochDisagreementAndForeignPartnershipAreNamed() {
        assertThat(PartnershipCheck.problems("p", view("a", NodeRole.PRINCIPAL, 2), view("b", NodeRole.MIRROR, 1)))
                .singleElement().asString().contains("a is at 2, b at 1");
        assertThat(PartnershipCheck.problems("q", view("a", NodeRole.PRINCIPAL, 1), view("b", NodeRole.MIRROR, 1)))
                .hasSize(2).allMatch(s -> s.contains("belongs to partnership p, not q"));
        assertThat(PartnershipCheck.agreedEpoch("q", view("a", NodeRole.PRINCIPAL, 1), view("b", NodeRole.MIRROR, 1))).isEmpty();
    }

    @Test
    void withoutAWitnessThePrincipalOfTheHighestEpochServesAndAnOlderPrincipalIsLeftBehind() {
        NodeView a1 = view("a", NodeRole.PRINCIPAL, 1);
        NodeView b2 = view("b", NodeRole.PRINCIPAL, 2);
        assertThat(PartnershipCheck.mirrorServesWithoutWitness(a1, b2)).isTrue();
        assertThat(PartnershipCheck.isLeftBehindPrincipal(b2, a1)).isTrue();
        // As configured, and after the old principal was demoted.
        assertThat(PartnershipCheck.mirrorServesWithoutWitness(a1, view("b", NodeRole.MIRROR, 1))).isFalse();
        assertThat(PartnershipCheck.mirrorServesWithoutWitness(view("a", NodeRole.MIRROR, 2), b2)).isTrue();
        assertThat(PartnershipCheck.isLeftBehindPrincipal(b2, view("a", NodeRole.MIRROR, 2))).isFalse();
        // Two principals of one epoch: nobody is chosen; the check refuses them.
        assertThat(PartnershipCheck.mirrorServesWithoutWitness(a1, view("b", NodeRole.PRINCIPAL, 1))).isFalse();
    }

    @Test
    void aPartnerAwayLeavesTheOtherCheckedAgainstTheWitnessRecord() {
        assertThat(PartnershipCheck.problemsWithPartnerAway("p", view("b", NodeRole.MIRROR, 4), NodeRole.MIRROR, 4)).isEmpty();
        assertThat(PartnershipCheck.problemsWithPartnerAway("p", view("a", NodeRole.PRINCIPAL, 4), NodeRole.PRINCIPAL, 4)).isEmpty();
        assertThat(PartnershipCheck.problemsWithPartnerAway("p", view("b", NodeRole.MIRROR, 3), NodeRole.MIRROR, 4))
                .singleElement().asString().contains("the witness records epoch 4 but mirror b is at epoch 3");
        assertThat(PartnershipCheck.problemsWithPartnerAway("p", view("b", NodeRole.PRINCIPAL, 4), NodeRole.MIRROR, 4))
                .singleElement().asString().contains("node b is configured as mirror but is principal at epoch 4");
        assertThat(PartnershipCheck.problemsWithPartnerAway("q", view("a", NodeRole.PRINCIPAL, 4), NodeRole.PRINCIPAL, 4))
                .singleElement().asString().contains("belongs to partnership p, not q");
    }

    @Test
    void aMirrorOfAnEarlierEpochIsLeftBehindOnlyBesideThePrincipalOfTheRecord() {
        assertThat(PartnershipCheck.mirrorLeftBehind(view("b", NodeRole.PRINCIPAL, 2), view("a", NodeRole.PRINCIPAL, 1), 2)).isTrue();
        assertThat(PartnershipCheck.mirrorLeftBehind(view("b", NodeRole.PRINCIPAL, 2), view("a", NodeRole.MIRROR, 1), 2)).isTrue();
        assertThat(PartnershipCheck.mirrorLeftBehind(view("b", NodeRole.PRINCIPAL, 2), view("a", NodeRole.MIRROR, 2), 2)).isFalse();
        // The principal itself disagrees with the record: the start refuses instead.
        assertThat(PartnershipCheck.mirrorLeftBehind(view("b", NodeRole.PRINCIPAL, 1), view("a", NodeRole.MIRROR, 0), 2)).isFalse();
        assertThat(PartnershipCheck.mirrorLeftBehind(view("b", NodeRole.MIRROR, 2), view("a", NodeRole.PRINCIPAL, 1), 2)).isFalse();
    }

    @Test
    void withAWitnessThePrincipalMustBeAtTheRecordsEpoch() {
        assertThat(PartnershipCheck.problems("p", view("a", NodeRole.PRINCIPAL, 2), view("b", NodeRole.MIRROR, 2), 2)).isEmpty();
        assertThat(PartnershipCheck.problems("p", view("a", NodeRole.PRINCIPAL, 2), view("b", NodeRole.MIRROR, 2), 3))
                .singleElement().asString().contains("the witness records epoch 3 but principal a is at epoch 2");
    }
}
