package dev.lockstep;

import dev.lockstep.jdbc.SqlStates;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.Driver;
import java.sql.DriverManager;
import java.sql.DriverPropertyInfo;
import java.sql.SQLException;
import java.sql.SQLFeatureNotSupportedException;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ConcurrentHashMap;
import java.util.logging.Logger;

/**
 * A {@link Driver} for {@code jdbc:lockstep:<file>} URLs, where the file holds a partnership
 * configuration in the form {@link LockstepConfig#fromProperties(Properties)} reads. Tools that
 * accept only a JDBC URL (benchmark and migration tools) can then use a partnership. One
 * {@link LockstepDataSource} is started per file and shared by every connection to that URL
 * until {@link #closeAll()}.
 *
 * <p>JDBC finds drivers through {@link DriverManager}, which is process-wide by design; the
 * driver instance registered there is the only shared state Lockstep keeps.
 */
public final class LockstepDriver implements Driver {

    /** The URL prefix this driver accepts. */
    public static final String PREFIX = "jdbc:lockstep:";

    private final Map<Path, LockstepDataSource> started = new ConcurrentHashMap<>();

    static {
        try {
            DriverManager.registerDriver(new LockstepDriver());
        } catch (SQLException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    @Override
    public Connection connect(String url, Properties info) throws SQLException {
        if (!acceptsURL(url)) {
            return null;
        }
        Path file = Path.of(url.substring(PREFIX.length())).toAbsolutePath().normalize();
        LockstepDataSource ds = started.get(file);
        if (ds == null) {
            synchronized (started) {
                ds = started.get(file);
                if (ds == null) {
                    ds = LockstepDataSource.start(readConfig(file));
                    started.put(file, ds);
                }
            }
        }
        return ds.getConnection();
    }

    private static LockstepConfig readConfig(Path file) throws SQLException {
        Properties p = new Properties();
        try (InputStream in = Files.newInputStream(file)) {
            p.load(in);
        } catch (IOException e) {
            throw SqlStates.error(SqlStates.CONNECTION_FAILED, "lockstep: cannot read the partnership configuration "
                    + file + " named by the JDBC URL: " + e, e);
        }
        try {
            return LockstepConfig.fromProperties(p);
        } catch (IllegalArgumentException e) {
            throw SqlStates.error("22023", "lockstep: partnership configuration " + file + ": " + e.getMessage(), e);
        }
    }

    /** Closes every data source this driver started. */
    public void closeAll() {
        synchronized (started) {
            started.values().forEach(LockstepDataSource::close);
            started.clear();
        }
    }

    @Override
    public boolean acceptsURL(String url) {
        return url != null && url.startsWith(PREFIX);
    }

    @Override
    public DriverPropertyInfo[] getPropertyInfo(String url, Properties info) {
        return new DriverPropertyInfo[0];
    }

    @Override
    public int getMajorVersion() {
        return 0;
    }

    @Override
    public int getMinorVersion() {
        return 1;
    }

    @Override
    public boolean jdbcCompliant() {
        return false;
    }

    @Override
    public Logger getParentLogger() throws SQLFeatureNotSupportedException {
        throw new SQLFeatureNotSupportedException("lockstep logs through SLF4J");
    }
}
