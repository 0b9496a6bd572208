package dev.lockstep.it;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

import java.sql.SQLException;

/** Base of the integration tests that also need a real witness, shared by one test class. */
abstract class OnTwoNodesAndWitness extends OnTwoNodes {

    static Witness witness;

    @BeforeAll
    static void startWitness() throws SQLException {
        witness = Witness.start();
    }

    @AfterAll
    static void stopWitness() {
        witness.close();
    }
}
