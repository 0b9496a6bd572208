package dev.lockstep.core;

import java.util.Locale;

/** The role a node holds in a partnership. Roles swap on failover. */
public enum NodeRole {
    PRINCIPAL, MIRROR;

    /** The spelling stored in the node schema. */
    public String sqlName() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** Reads the spelling stored in the node schema. */
    public static NodeRole fromSql(String text) {
        return valueOf(text.toUpperCase(Locale.ROOT));
    }
}
