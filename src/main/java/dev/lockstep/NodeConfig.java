package dev.lockstep;

import dev.lockstep.core.Gid;

import java.util.Objects;

/**
 * One PostgreSQL database that takes part in a partnership.
 *
 * @param name     a short name used in logs, metrics and errors (lower case letters, digits, {@code _} and {@code -})
 * @param jdbcUrl  a {@code jdbc:postgresql:} URL
 * @param user     the role Lockstep connects as
 * @param password its password; never logged nor shown by {@link #toString()}
 */
public record NodeConfig(String name, String jdbcUrl, String user, String password) {

    public NodeConfig {
        Objects.requireNonNull(name, "node name");
        Objects.requireNonNull(jdbcUrl, "node jdbcUrl");
        Objects.requireNonNull(user, "node user");
        password = password == null ? "" : password;
        if (!Gid.isValidName(name)) {
            throw new IllegalArgumentException("node name must be 1-63 characters of a-z, 0-9, _ and -, starting with a letter or digit; got '" + name + "'");
        }
        if (!jdbcUrl.startsWith("jdbc:postgresql:")) {
            throw new IllegalArgumentException("node " + name + ": jdbcUrl must start with jdbc:postgresql:, got '" + jdbcUrl + "'");
        }
    }

    /** Convenience factory. */
    public static NodeConfig of(String name, String jdbcUrl, String user, String password) {
        return new NodeConfig(name, jdbcUrl, user, password);
    }

    @Override
    public String toString() {
        return "NodeConfig[name=" + name + ", jdbcUrl=" + jdbcUrl + ", user=" + user + ", password=****]";
    }
}
