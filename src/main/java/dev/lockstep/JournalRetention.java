package dev.lockstep;

import dev.lockstep.commit.JournalReplay;
import dev.lockstep.commit.JournalTrim;
import dev.lockstep.commit.PrincipalState;
import dev.lockstep.commit.SeedMark;
import dev.lockstep.core.JournalLimit;
import dev.lockstep.core.MirroringState;
import dev.lockstep.witness.WitnessStore;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.sql.Connection;
import java.sql.SQLException;
import java.time.Duration;

/**
 * Keeps the principal's journal bounded, once per {@code journalCheckInterval}. While the mirror
 * is SYNCHRONIZED, the records both nodes hold are deleted on both (up to a position settled
 * since the previous run). While the mirror is away, the journal keeps what the mirror lacks up to
 * {@code journalLimitRecords} / {@code journalLimitAge}: a warning from 80 %, and past the limit the
 * mirror is marked for seeding at the principal and the witness and the journal of the current
 * epoch is dropped (and dropped again at every run until the mirror is seeded), instead of the
 * disk filling. Runs under the catch-up claim, so never during a catch-up or seeding.
 */
final class JournalRetention {

    private static final Logger LOG = LoggerFactory.getLogger(JournalRetention.class);
    /** The most records one trim looks at; the next run goes on. */
    private static final int MAX_SCAN = 50_000;

    private final Coordinator coordinator;
    private final WitnessStore witness;
    private JournalTrim.Horizon observed;
    private JournalLimit.Level told = JournalLimit.Level.WITHIN;

    JournalRetention(Coordinator coordinator, WitnessStore witness) {
        this.coordinator = coordinator;
        this.witness = witness;
    }

    /** One run; failures are logged, the next run tries again. */
    void runQuietly() {
        try {
            run();
        } catch (SQLException | RuntimeException e) {
            // A run that keeps failing (a drop that times out, say) must not go unnoticed.
            LOG.warn("lockstep: partnership {}: journal retention failed: {}", coordinator.config().partnership(), e.toString());
        }
    }

    synchronized void run() throws SQLException {
        LockstepConfig config = coordinator.config();
        Coordinator.Topology t = coordinator.topology();
        try (Connection p = coordinator.connectForCatchUp(t.principal, false)) {
            if (!JournalReplay.claim(p, config.partnership())) {
                return;
            }
            p.setAutoCommit(false);
            MirroringState state = PrincipalState.read(p, config.remoteCallTimeout());
            p.setAutoCommit(true);
            if (state == MirroringState.SYNCHRONIZED) {
                told = JournalLimit.Level.WITHIN;
                trimHeldByBoth(p, t);
                return;
            }
            observed = null;
            if (SeedMark.marked(p)) {
                JournalTrim.dropCurrentEpoch(p, t.epoch);
                return;
            }
            JournalTrim.Usage usage = JournalTrim.usage(p);
            long maxAge = config.journalLimitAge() == null ? 0 : config.journalLimitAge().toMillis();
            JournalLimit.Level level = JournalLimit.assess(usage.records(), usage.oldestAgeMillis(), config.journalLimitRecords(), maxAge);
            JournalUsage measured = new JournalUsage(config.partnership(), t.principal.name(), t.mirror.name(), t.epoch,
                    usage.records(), Duration.ofMillis(usage.oldestAgeMillis()), config.journalLimitRecords(), config.journalLimitAge());
            if (level == JournalLimit.Level.EXCEEDED) {
                exceeded(p, t, measured);
            } else if (level == JournalLimit.Level.NEAR && told == JournalLimit.Level.WITHIN) {
                told = level;
                LOG.warn("lockstep: partnership {}: the journal principal {} keeps for mirror {} ({}) nears its limit: {} records"
                                + " (limit {}), oldest {} (limit {}); past it the mirror will need seeding", config.partnership(),
                        t.principal.name(), t.mirror.name(), state, usage.records(), config.journalLimitRecords(),
                        measured.oldestAge(), config.journalLimitAge());
                coordinator.telemetry().journalLimit(measured, false);
                tell(() -> config.journalRetentionListener().nearLimit(measured));
            }
        }
    }

    private void exceeded(Connection p, Coordinator.Topology t, JournalUsage usage) throws SQLException {
        LockstepConfig config = coordinator.config();
        String why = "journal limit exceeded on principal " + t.principal.name() + ": " + usage.records() + " records (limit "
                + usage.limitRecords() + "), oldest " + usage.oldestAge() + " (limit " + usage.limitAge() + ")";
        if (!SeedMark.mark(p, t.epoch, true)) {
            return;
        }
        if (told == JournalLimit.Level.WITHIN) {
            // Passed between two checks: the warning still comes first.
            coordinator.telemetry().journalLimit(usage, false);
            tell(() -> config.journalRetentionListener().nearLimit(usage));
        }
        told = JournalLimit.Level.EXCEEDED;
        if (witness != null) {
            try {
                witness.markMirrorForSeeding(config.partnership(), t.epoch, why + "; mirror " + t.mirror.name() + " needs seeding",
                        config.coordinatorId());
            } catch (SQLException e) {
                LOG.warn("lockstep: partnership {}: recording at the witness that mirror {} needs seeding failed: {}",
                        config.partnership(), t.mirror.name(), e.getMessage());
            }
        }
        LOG.warn("lockstep: partnership {}: {}; mirror {} is marked for seeding and the journal of epoch {} is dropped",
                config.partnership(), why, t.mirror.name(), t.epoch);
        coordinator.telemetry().journalLimit(usage, true);
        tell(() -> config.journalRetentionListener().limitExceeded(usage));
        long dropped = JournalTrim.dropCurrentEpoch(p, t.epoch);
        LOG.info("lockstep: partnership {}: {} journal records dropped", config.partnership(), dropped);
    }

    /**
     * HIGH_PERFORMANCE: the shipper holds the catch-up claim for as long as it ships, so it trims
     * on its own connection to the principal, once a check interval, what both nodes hold.
     */
    synchronized void trimWhileShipping(Connection p, Coordinator.Topology t) throws SQLException {
        told = JournalLimit.Level.WITHIN;
        trimHeldByBoth(p, t);
    }

    /** Trims what both nodes hold, up to the position observed at the previous run once it has settled. */
    private void trimHeldByBoth(Connection p, Coordinator.Topology t) throws SQLException {
        try (Connection m = coordinator.connectForCatchUp(t.mirror, true)) {
            JournalTrim.Horizon earlier = observed;
            if (earlier == null || earlier.epoch() != t.epoch) {
                observed = JournalTrim.observe(p);
                return;
            }
            if (!JournalTrim.settled(p, earlier)) {
                // A transaction seen then still runs (or stays prepared): keep waiting for it.
                return;
            }
            observed = JournalTrim.observe(p);
            long trimmed = JournalTrim.trimHeldByBoth(p, m, earlier, MAX_SCAN);
            if (trimmed > 0) {
                LOG.debug("lockstep: partnership {}: trimmed {} journal records both nodes hold", coordinator.config().partnership(),
                        trimmed);
            }
        }
    }

    private void tell(Runnable call) {
        try {
            call.run();
        } catch (RuntimeException e) {
            LOG.warn("lockstep: partnership {}: the journal retention listener failed: {}", coordinator.config().partnership(),
                    e.toString());
        }
    }
}
