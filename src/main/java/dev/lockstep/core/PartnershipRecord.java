package dev.lockstep.core;

import java.util.Objects;

/**
 * The witness's record of a partnership: who is principal at which epoch, and the mirroring
 * state. Every role change produces a new record at a higher epoch.
 *
 * @param name      partnership name
 * @param epoch     current epoch, at least 1
 * @param principal name of the principal node
 * @param mirror    name of the mirror node
 * @param state     mirroring state
 * @param mode      operating mode
 */
public record PartnershipRecord(String name, long epoch, String principal, String mirror, MirroringState state,
                                OperatingMode mode) {

    /** Validates the record. */
    public PartnershipRecord {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(principal, "principal");
        Objects.requireNonNull(mirror, "mirror");
        Objects.requireNonNull(state, "state");
        Objects.requireNonNull(mode, "mode");
        if (epoch < 1) {
            throw new IllegalArgumentException("partnership " + name + ": epoch must be at least 1, got " + epoch);
        }
        if (principal.equals(mirror)) {
            throw new IllegalArgumentException("partnership " + name + ": principal and mirror must be different nodes, both are " + principal);
        }
    }

    /** The same record in another state, at the same epoch. */
    public PartnershipRecord withState(MirroringState next) {
        return new PartnershipRecord(name, epoch, principal, mirror, next, mode);
    }

    /** The record after the roles swap: the next epoch, the mirror as principal. */
    public PartnershipRecord swapped(MirroringState next) {
        return new PartnershipRecord(name, epoch + 1, mirror, principal, next, mode);
    }

    /** The role a node holds in this record, or null if it is not a partner. */
    public NodeRole roleOf(String node) {
        if (principal.equals(node)) {
            return NodeRole.PRINCIPAL;
        }
        return mirror.equals(node) ? NodeRole.MIRROR : null;
    }
}
