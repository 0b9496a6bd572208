package dev.lockstep.core;

/**
 * One primary key at which a mirrored table differs between the principal and the mirror.
 *
 * @param key  the row's primary key as a JSON object, e.g. {@code {"id": 7}}
 * @param kind how the row differs
 */
public record RowDifference(String key, Kind kind) {

    /** How a row differs between the nodes. */
    public enum Kind {
        /** On both nodes, with different contents. */
        CHANGED,
        /** On the principal only. */
        MISSING_ON_MIRROR,
        /** On the mirror only. */
        EXTRA_ON_MIRROR
    }

    public RowDifference {
        java.util.Objects.requireNonNull(key, "key");
        java.util.Objects.requireNonNull(kind, "kind");
    }
}
