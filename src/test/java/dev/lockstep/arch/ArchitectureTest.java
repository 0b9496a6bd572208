package dev.lockstep.arch;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import org.junit.jupiter.api.Test;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;

/** Guards the dependency table of DESIGN.md. */
class ArchitectureTest {

    private static final JavaClasses CLASSES = new ClassFileImporter()
            .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
            .importPackages("dev.lockstep");

    @Test
    void coreDependsOnTheJdkAlone() {
        noClasses().that().resideInAPackage("dev.lockstep.core..")
                .should().dependOnClassesThat().resideOutsideOfPackages("dev.lockstep.core..", "java.lang..", "java.util..",
                        "java.time..", "java.math..", "java.util.function..")
                .check(CLASSES);
    }

    @Test
    void coreUsesNoJdbcThreadsIoOrLogging() {
        noClasses().that().resideInAPackage("dev.lockstep.core..")
                .should().dependOnClassesThat().resideInAnyPackage("java.sql..", "javax.sql..", "java.io..", "java.nio..",
                        "java.net..", "java.util.concurrent..", "java.util.logging..", "org.slf4j..")
                .orShould().dependOnClassesThat().areAssignableTo(Thread.class)
                .orShould().dependOnClassesThat().areAssignableTo(java.time.Clock.class)
                .check(CLASSES);
    }

    @Test
    void jdbcLayerDependsOnCoreOnly() {
        noClasses().that().resideInAPackage("dev.lockstep.jdbc..")
                .should().dependOnClassesThat().resideInAnyPackage("dev.lockstep", "dev.lockstep.commit..", "dev.lockstep.cli..")
                .check(CLASSES);
    }

    @Test
    void commitLayerDoesNotReachUpToTheApi() {
        noClasses().that().resideInAPackage("dev.lockstep.commit..")
                .should().dependOnClassesThat().resideInAnyPackage("dev.lockstep", "dev.lockstep.cli..")
                .check(CLASSES);
    }

    @Test
    void witnessLayerDependsOnCoreOnly() {
        noClasses().that().resideInAPackage("dev.lockstep.witness..")
                .should().dependOnClassesThat().resideInAnyPackage("dev.lockstep", "dev.lockstep.commit..", "dev.lockstep.jdbc..",
                        "dev.lockstep.cli..")
                .check(CLASSES);
    }

    @Test
    void healthLayerDependsOnCoreOnly() {
        noClasses().that().resideInAPackage("dev.lockstep.health..")
                .should().dependOnClassesThat().resideInAnyPackage("dev.lockstep", "dev.lockstep.commit..", "dev.lockstep.jdbc..",
                        "dev.lockstep.witness..", "dev.lockstep.cli..")
                .check(CLASSES);
    }

    @Test
    void onlyTheCommandLineUsesTheCommandLine() {
        noClasses().that().resideOutsideOfPackage("dev.lockstep.cli..")
                .should().dependOnClassesThat().resideInAPackage("dev.lockstep.cli..")
                .check(CLASSES);
    }
}
