package dev.lockstep;

import dev.lockstep.commit.JournalReplay;
import dev.lockstep.jdbc.SqlStates;

import java.sql.Connection;
import java.sql.SQLException;
import java.util.List;

/**
 * HIGH_PERFORMANCE mode's log shipping: the principal commits alone and this applies its journal
 * to the mirror continuously, in the principal's order (epoch, seq), the records the mirror lacks
 * from a position below which nothing can still be in flight. It runs until the mirror fails, the
 * epoch changes, shipping is no longer wanted (suspended) or the coordinator closes. One
 * coordinator at a time ships (the catch-up claim on the principal).
 */
final class Shipper {

    private final Coordinator coordinator;

    Shipper(Coordinator coordinator) {
        this.coordinator = coordinator;
    }

    /**
     * Ships until told to stop.
     *
     * @param t the roles and epoch to ship in
     * @throws SQLException when a node fails; the caller tries again later
     */
    void run(Coordinator.Topology t) throws SQLException {
        LockstepConfig config = coordinator.config();
        try (Connection p = coordinator.connectForCatchUp(t.principal, false)) {
            if (!JournalReplay.claim(p, config.partnership())) {
                return;
            }
            ship(t, p);
        }
    }

    private void ship(Coordinator.Topology t, Connection p) throws SQLException {
        LockstepConfig config = coordinator.config();
        try (Connection m = coordinator.connectForCatchUp(t.mirror, true)) {
            if (JournalReplay.preparedOn(m, config.partnership()) > 0) {
                throw SqlStates.error(SqlStates.NOT_READY, "lockstep: mirror node " + t.mirror.name() + " of partnership "
                        + config.partnership() + " holds transactions in doubt; in-doubt resolution settles them before shipping", null);
            }
            // A blank mirror, one marked for seeding, or one that holds transactions the principal
            // lacks (the old principal after a forced service: they go to the divergence report)
            // is seeded first; shipping goes on from the snapshot.
            Seeding.prepareMirror(config, null, p, m, t);
            JournalReplay replay = new JournalReplay(p, m, config.remoteCallTimeout());
            long idle = Math.max(20, config.heartbeatInterval().toMillis() / 4);
            long nextTrim = System.nanoTime() + config.journalCheckInterval().toNanos();
            while (!Thread.currentThread().isInterrupted() && coordinator.topology() == t && coordinator.shippingWanted()) {
                if (System.nanoTime() - nextTrim >= 0) {
                    coordinator.retention().trimWhileShipping(p, t);
                    nextTrim = System.nanoTime() + config.journalCheckInterval().toNanos();
                }
                List<JournalReplay.Key> keys = replay.unshipped(t.epoch);
                if (keys.isEmpty()) {
                    pause(idle);
                } else {
                    coordinator.telemetry().replayed(replay.replay(keys));
                }
            }
        }
    }

    private static void pause(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
