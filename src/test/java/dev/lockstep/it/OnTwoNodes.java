package dev.lockstep.it;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/** Base of the integration tests: two real PostgreSQL servers shared by one test class. */
abstract class OnTwoNodes {

    static TwoNodes nodes;

    @BeforeAll
    static void startNodes() {
        nodes = TwoNodes.start();
    }

    @AfterAll
    static void stopNodes() {
        nodes.close();
    }
}
