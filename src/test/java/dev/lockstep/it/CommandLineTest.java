package dev.lockstep.it;

import dev.lockstep.LockstepConfig;
import dev.lockstep.NodeConfig;
import dev.lockstep.cli.Main;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.Writer;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.Statement;
import java.time.Duration;
import java.util.Properties;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** The {@code lockstep} command line against real nodes and a real witness: every command, and bad input. */
class CommandLineTest extends OnTwoNodesAndWitness {

    @TempDir
    Path dir;

    /** What one run printed and returned. */
    private record Run(int code, String out, String err) {
        String all() {
            return out + err;
        }
    }

    private static Run lockstep(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = Main.run(args, new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Run(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    private Path configFile(String name, LockstepConfig config) throws IOException {
        Properties p = new Properties();
        p.setProperty("partnership", config.partnership());
        put(p, "principal", config.principal());
        put(p, "mirror", config.mirror());
        if (config.witness() != null) {
            put(p, "witness", config.witness());
        }
        p.setProperty("remoteCallTimeout", "PT1S");
        p.setProperty("connectTimeout", "PT2S");
        p.setProperty("inDoubtGrace", "PT5S");
        p.setProperty("heartbeatInterval", "PT0.2S");
        p.setProperty("partnerTimeout", "PT2S");
        Path file = dir.resolve(name + ".properties");
        try (Writer w = Files.newBufferedWriter(file)) {
            p.store(w, null);
        }
        return file;
    }

    /**
     * Makes the principal's server ask {@code role} for a password (the embedded servers trust
     * every local login): a scram line ahead of the others in its pg_hba.conf, then a reload.
     * False where that file is not on this machine (a container).
     */
    private static boolean passwordLoginFor(TwoNodes.Pair pair, String role, String password) throws Exception {
        try (Connection c = pair.principal(); Statement st = c.createStatement()) {
            Path hba = Path.of((String) TwoNodes.value(c, "SHOW hba_file"));
            if (!Files.exists(hba)) {
                return false;
            }
            st.execute("CREATE ROLE " + role + " LOGIN PASSWORD '" + password + "'");
            Files.writeString(hba, "host all " + role + " 127.0.0.1/32 scram-sha-256\n" + Files.readString(hba));
            st.execute("SELECT pg_reload_conf()");
            return true;
        }
    }

    private static void put(Properties p, String prefix, NodeConfig n) {
        p.setProperty(prefix + ".name", n.name());
        p.setProperty(prefix + ".url", n.jdbcUrl());
        p.setProperty(prefix + ".user", n.user());
        p.setProperty(prefix + ".password", n.password());
    }

    @Test
    void everyCommandAgainstRealNodes() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("cli");
        String config = configFile("cli", pair.config().witness(witness.config()).build()).toString();

        Run install = lockstep("install", "--config", config);
        assertThat(install.code()).as(install.all()).isZero();
        assertThat(install.out()).contains("installed: node-a, node-b, witness (witness)");

        for (Connection c : new Connection[] {pair.principal(), pair.mirror()}) {
            try (c; Statement st = c.createStatement()) {
                // An existing table, made before Lockstep: around its DDL capture.
                st.execute("SET session_replication_role = replica");
                st.execute("SET lockstep.applier = on");
                st.execute("CREATE TABLE acct (id int PRIMARY KEY, balance int)");
                st.execute("INSERT INTO acct SELECT g, 100 FROM generate_series(1, 10) g");
            }
        }
        Run attach = lockstep("attach", "--config", config, "--table", "acct", "--json");
        assertThat(attach.code()).as(attach.all()).isZero();
        assertThat(attach.out()).contains("\"attached\":[\"public.acct\"]");

        Run status = lockstep("status", "--config", config);
        assertThat(status.code()).as(status.all()).isZero();
        assertThat(status.out()).contains("state: SYNCHRONIZED", "principal: node-a principal UP", "mirror: node-b mirror UP",
                "epoch: 1", "send_queue_records: 0");
        Run statusJson = lockstep("status", "--config", config, "--json");
        assertThat(statusJson.out()).contains("\"state\":\"SYNCHRONIZED\"", "\"principal\":{\"name\":\"node-a\"", "\"witness\":\"UP\"");

        Run verify = lockstep("verify", "--config", config);
        assertThat(verify.code()).as(verify.all()).isZero();
        assertThat(verify.out()).contains("identical: true");

        Run suspend = lockstep("suspend", "--config", config);
        assertThat(suspend.code()).as(suspend.all()).isZero();
        assertThat(suspend.out()).contains("state: SUSPENDED");
        Run resume = lockstep("resume", "--config", config, "--json");
        assertThat(resume.code()).as(resume.all()).isZero();
        assertThat(resume.out()).contains("\"state\":\"SYNCHRONIZING\"");
        // A running coordinator finishes the catch-up; each status run starts one.
        await().atMost(Duration.ofSeconds(60)).until(() -> lockstep("status", "--config", config).out().contains("state: SYNCHRONIZED"));

        Run failover = lockstep("failover", "--config", config, "--to", "mirror");
        assertThat(failover.code()).as(failover.all()).isZero();
        assertThat(failover.out()).contains("epoch: 2", "principal: node-b", "state: SYNCHRONIZED");
        Run failback = lockstep("failover", "--config", config, "--to", "primary", "--json");
        assertThat(failback.code()).as(failback.all()).isZero();
        assertThat(failback.out()).contains("\"epoch\":3", "\"principal\":\"node-a\"");

        Run unconfirmed = lockstep("force-service", "--config", config);
        assertThat(unconfirmed.code()).isEqualTo(Main.USAGE);
        assertThat(unconfirmed.err()).contains("--allow-data-loss");
        Run refused = lockstep("force-service", "--config", config, "--allow-data-loss");
        assertThat(refused.code()).as(refused.all()).isEqualTo(Main.ERROR);
        assertThat(refused.err()).contains("SQLSTATE 55000");

        try (Connection m = pair.mirror(); Statement st = m.createStatement()) {
            st.execute("SET session_replication_role = replica");
            st.execute("SET lockstep.applier = on");
            st.execute("UPDATE acct SET balance = 7 WHERE id = 3");
        }
        Run differs = lockstep("verify", "--config", config, "--json");
        assertThat(differs.code()).as(differs.all()).isEqualTo(1);
        assertThat(differs.out()).contains("\"identical\":false", "public.acct DIFFERENT", "public.acct {\\\"id\\\": 3} CHANGED");
        Run repaired = lockstep("verify", "--config", config, "--repair");
        assertThat(repaired.code()).as(repaired.all()).isZero();
        assertThat(repaired.out()).contains("repaired: public.acct 1 changed, 0 missing, 0 extra", "identical_after_repair: true");

        // A row lost on the mirror behind Lockstep's back; seed copies the principal's tables again.
        try (Connection m = pair.mirror(); Statement st = m.createStatement()) {
            st.execute("SET session_replication_role = replica");
            st.execute("SET lockstep.applier = on");
            st.execute("DELETE FROM acct WHERE id = 5");
        }
        Run seed = lockstep("seed", "--config", config, "--wait-seconds", "120");
        assertThat(seed.code()).as(seed.all()).isZero();
        assertThat(seed.out()).contains("state: SYNCHRONIZED", "seeded: true");
        assertThat(lockstep("verify", "--config", config).code()).isZero();
    }

    @Test
    void badInputGetsAClearMessageAndAnErrorCode() throws Exception {
        TwoNodes.Pair pair = nodes.newPair("clibad");
        LockstepConfig good = pair.config().witness(witness.config()).build();
        String config = configFile("clibad", good).toString();
        assertThat(lockstep("install", "--config", config).code()).isZero();

        Run unknown = lockstep("status", "--config", config, "--partnership", "nosuch");
        assertThat(unknown.code()).isEqualTo(Main.ERROR);
        assertThat(unknown.err()).contains("witness witness knows no partnership 'nosuch'", "SQLSTATE 42704");

        int closedPort;
        try (ServerSocket s = new ServerSocket(0)) {
            closedPort = s.getLocalPort();
        }
        NodeConfig nowhere = NodeConfig.of("witness", "jdbc:postgresql://127.0.0.1:" + closedPort + "/witness",
                good.witness().user(), good.witness().password());
        Run unreachable = lockstep("status", "--config", configFile("unreachable", good.toBuilder().witness(nowhere).build()).toString());
        assertThat(unreachable.code()).isEqualTo(Main.ERROR);
        assertThat(unreachable.err()).contains("cannot connect to witness at jdbc:postgresql://127.0.0.1:" + closedPort);

        NodeConfig stranger = NodeConfig.of("node-a", good.principal().jdbcUrl(), "no_such_role", "secret");
        Run wrongUser = lockstep("status", "--config", configFile("wronguser",
                good.toBuilder().witness(null).mode(null).principal(stranger).build()).toString());
        assertThat(wrongUser.code()).isEqualTo(Main.ERROR);
        assertThat(wrongUser.err()).contains("node-a", "no_such_role");

        if (passwordLoginFor(pair, "lockstep_pw", "right")) {
            NodeConfig wrongPassword = NodeConfig.of("node-a", good.principal().jdbcUrl(), "lockstep_pw", "wrong");
            Run refusedLogin = lockstep("status", "--config", configFile("wrongpassword",
                    good.toBuilder().witness(null).mode(null).principal(wrongPassword).build()).toString());
            assertThat(refusedLogin.code()).isEqualTo(Main.ERROR);
            assertThat(refusedLogin.err()).contains("node-a", "lockstep_pw", "password authentication failed", "SQLSTATE 28P01");
        }

        TwoNodes.Pair bare = nodes.newPair("clibare");
        Run noSchema = lockstep("status", "--config", configFile("clibare", bare.config().build()).toString());
        assertThat(noSchema.code()).isEqualTo(Main.ERROR);
        assertThat(noSchema.err()).contains("node-a", "has no Lockstep schema", "lockstep install");

        Run noFile = lockstep("status", "--config", dir.resolve("missing.properties").toString());
        assertThat(noFile.code()).isEqualTo(Main.USAGE);
        assertThat(noFile.err()).contains("missing.properties does not exist");

        Path broken = dir.resolve("broken.properties");
        Files.writeString(broken, "partnership=x\nprincipal.name=a\n");
        Run badConfig = lockstep("status", "--config", broken.toString());
        assertThat(badConfig.code()).isEqualTo(Main.USAGE);
        assertThat(badConfig.err()).contains("principal.url");

        Run badOption = lockstep("failover", "--config", config, "--to", "sideways");
        assertThat(badOption.code()).isEqualTo(Main.USAGE);
        assertThat(badOption.err()).contains("sideways");
    }
}
