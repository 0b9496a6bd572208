package dev.lockstep;

/** How a mirrored table's changes are captured on the principal. */
public enum CaptureMode {
    /** Statement-level triggers with transition tables: one capture row per statement (the default; faster). */
    STATEMENT,
    /** Row-level triggers: one capture row per changed row. Kept for comparison. */
    ROW;

    String sqlName() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
