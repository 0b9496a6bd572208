package dev.lockstep;

import dev.lockstep.commit.CommitObserver;
import dev.lockstep.core.Gid;
import dev.lockstep.core.OperatingMode;
import dev.lockstep.events.LockstepEvent;
import dev.lockstep.events.LockstepListener;
import dev.lockstep.events.WarningThresholds;

import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Properties;
import java.util.UUID;

/**
 * Immutable, validated configuration of one coordinator of a partnership. Build it with
 * {@link #builder()} or read it from properties with {@link #fromProperties(Properties)}. Every
 * invalid value is rejected with a message that names the setting, the rule and the value.
 */
public final class LockstepConfig {

    private final String partnership;
    private final NodeConfig principal;
    private final NodeConfig mirror;
    private final String coordinatorId;
    private final int poolSize;
    private final Duration remoteCallTimeout;
    private final Duration connectTimeout;
    private final Duration inDoubtGrace;
    private final Duration resolverInterval;
    private final boolean installSchema;
    private final Clock clock;
    private final CommitObserver commitObserver;
    private final NodeConfig witness;
    private final OperatingMode mode;
    private final Duration partnerTimeout;
    private final Duration heartbeatInterval;
    private final List<LockstepListener> listeners;
    private final WarningThresholds warningThresholds;
    private final long journalLimitRecords;
    private final Duration journalLimitAge;
    private final Duration journalCheckInterval;
    private final Duration seedingTimeout;
    private final JournalRetentionListener journalRetentionListener;

    private LockstepConfig(Builder b) {
        this.partnership = b.partnership;
        this.principal = b.principal;
        this.mirror = b.mirror;
        this.coordinatorId = b.coordinatorId;
        this.poolSize = b.poolSize;
        this.remoteCallTimeout = b.remoteCallTimeout;
        this.connectTimeout = b.connectTimeout;
        this.inDoubtGrace = b.inDoubtGrace;
        this.resolverInterval = b.resolverInterval;
        this.installSchema = b.installSchema;
        this.clock = b.clock;
        this.commitObserver = b.commitObserver;
        this.witness = b.witness;
        this.mode = b.mode != null ? b.mode : b.witness != null ? OperatingMode.HIGH_SAFETY_AUTOMATIC_FAILOVER : OperatingMode.HIGH_SAFETY;
        this.partnerTimeout = b.partnerTimeout;
        this.heartbeatInterval = b.heartbeatInterval;
        this.listeners = List.copyOf(b.listeners);
        this.warningThresholds = b.warningThresholds;
        this.journalLimitRecords = b.journalLimitRecords;
        this.journalLimitAge = b.journalLimitAge;
        this.journalCheckInterval = b.journalCheckInterval;
        this.seedingTimeout = b.seedingTimeout;
        this.journalRetentionListener = b.journalRetentionListener;
    }

    /** A new builder with the defaults. */
    public static Builder builder() {
        return new Builder();
    }

    /** Partnership name. */
    public String partnership() { return partnership; }
    /** The node that starts as principal. */
    public NodeConfig principal() { return principal; }
    /** The node that starts as mirror. */
    public NodeConfig mirror() { return mirror; }
    /** This coordinator's id (1-56 characters), part of every global transaction id it prepares. */
    public String coordinatorId() { return coordinatorId; }
    /**
     * Connections per node for application transactions. The coordinator keeps three more to the
     * principal for its own work (monitor, in-doubt resolution, measuring), so that an application
     * holding every pooled connection does not keep it from recording a lost mirror; the mirror's
     * pool has three more than this, shared by commits and that work.
     */
    public int poolSize() { return poolSize; }
    /** Deadline of every call Lockstep makes to a node. */
    public Duration remoteCallTimeout() { return remoteCallTimeout; }
    /** Deadline for opening a connection to a node. */
    public Duration connectTimeout() { return connectTimeout; }
    /**
     * How old another coordinator's prepared transaction must be before in-doubt resolution
     * settles it. At least 3 x remoteCallTimeout (rounded up to seconds) + connectTimeout, the
     * longest a live commit keeps a transaction prepared while its nodes answer; settling one
     * that a frozen node or a black-holed link holds longer is safe, since the gid is barred on
     * the mirror before a rollback.
     */
    public Duration inDoubtGrace() { return inDoubtGrace; }
    /** How often in-doubt resolution runs. */
    public Duration resolverInterval() { return resolverInterval; }
    /** Whether the node schema is installed (idempotently) at start. */
    public boolean installSchema() { return installSchema; }
    /** The clock used for timing decisions. */
    public Clock clock() { return clock; }
    /** Observer of commit steps. */
    public CommitObserver commitObserver() { return commitObserver; }
    /** The witness, or null when none is used. */
    public NodeConfig witness() { return witness; }
    /** The operating mode: with a witness, HIGH_SAFETY_AUTOMATIC_FAILOVER unless set otherwise. */
    public OperatingMode mode() { return mode; }
    /** How long a silent partner has before it counts as failed (SQL Server's default: 10 s). */
    public Duration partnerTimeout() { return partnerTimeout; }
    /** Time between two probes of each node and two heartbeats at the witness. */
    public Duration heartbeatInterval() { return heartbeatInterval; }
    /** Listeners told of every state change, failover and threshold crossed (may be empty). */
    public List<LockstepListener> listeners() { return listeners; }
    /** Limits above which {@link LockstepEvent.ThresholdCrossed} is raised. */
    public WarningThresholds warningThresholds() { return warningThresholds; }
    /**
     * The most journal records a principal keeps while its mirror is away; past it the mirror is
     * marked for seeding and the journal trimmed (a warning fires from 80 %).
     */
    public long journalLimitRecords() { return journalLimitRecords; }
    /** The oldest a journal record may get while the mirror is away, or null for no age limit. */
    public Duration journalLimitAge() { return journalLimitAge; }
    /** How often the journal is trimmed (while SYNCHRONIZED) or checked against its limit (while the mirror is away). */
    public Duration journalCheckInterval() { return journalCheckInterval; }
    /** Deadline of the whole copy that seeds a mirror; at it the copy is cancelled and nothing is committed. */
    public Duration seedingTimeout() { return seedingTimeout; }
    /** Told when the journal nears or passes its limit while the mirror is away. */
    public JournalRetentionListener journalRetentionListener() { return journalRetentionListener; }

    /** A builder that starts from this configuration. */
    public Builder toBuilder() {
        Builder b = new Builder();
        b.partnership = partnership;
        b.principal = principal;
        b.mirror = mirror;
        b.coordinatorId = coordinatorId;
        b.poolSize = poolSize;
        b.remoteCallTimeout = remoteCallTimeout;
        b.connectTimeout = connectTimeout;
        b.inDoubtGrace = inDoubtGrace;
        b.resolverInterval = resolverInterval;
        b.installSchema = installSchema;
        b.clock = clock;
        b.commitObserver = commitObserver;
        b.witness = witness;
        b.mode = mode;
        b.partnerTimeout = partnerTimeout;
        b.heartbeatInterval = heartbeatInterval;
        b.listeners.addAll(listeners);
        b.warningThresholds = warningThresholds;
        b.journalLimitRecords = journalLimitRecords;
        b.journalLimitAge = journalLimitAge;
        b.journalCheckInterval = journalCheckInterval;
        b.seedingTimeout = seedingTimeout;
        b.journalRetentionListener = journalRetentionListener;
        return b;
    }

    /**
     * Reads a configuration from properties: {@code partnership}, {@code principal.name},
     * {@code principal.url}, {@code principal.user}, {@code principal.password}, the same four for
     * {@code mirror}, and optionally {@code poolSize}, {@code remoteCallTimeout},
     * {@code connectTimeout}, {@code inDoubtGrace}, {@code resolverInterval}, {@code partnerTimeout},
     * {@code heartbeatInterval} (ISO-8601 durations such as {@code PT10S}), {@code installSchema},
     * {@code coordinatorId}, the four {@code witness.*} settings, {@code mode}, {@code journalLimitRecords},
     * {@code journalLimitAge}, {@code journalCheckInterval} and {@code seedingTimeout}.
     *
     * @param p the properties
     * @return the validated configuration
     * @throws IllegalArgumentException naming the property that is missing or invalid
     */
    public static LockstepConfig fromProperties(Properties p) {
        Builder b = builder()
                .partnership(required(p, "partnership"))
                .principal(node(p, "principal"))
                .mirror(node(p, "mirror"));
        if (p.getProperty("poolSize") != null) {
            b.poolSize(parseInt(p, "poolSize"));
        }
        durationProperty(p, "remoteCallTimeout", b::remoteCallTimeout);
        durationProperty(p, "connectTimeout", b::connectTimeout);
        durationProperty(p, "inDoubtGrace", b::inDoubtGrace);
        durationProperty(p, "resolverInterval", b::resolverInterval);
        if (p.getProperty("installSchema") != null) {
            b.installSchema(Boolean.parseBoolean(p.getProperty("installSchema")));
        }
        if (p.getProperty("coordinatorId") != null) {
            b.coordinatorId(p.getProperty("coordinatorId"));
        }
        if (p.getProperty("witness.url") != null) {
            b.witness(node(p, "witness"));
        }
        if (p.getProperty("mode") != null) {
            try {
                b.mode(OperatingMode.valueOf(p.getProperty("mode").trim()));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("invalid setting 'mode': one of HIGH_SAFETY_AUTOMATIC_FAILOVER, HIGH_SAFETY, HIGH_PERFORMANCE;"
                        + " got " + p.getProperty("mode"), e);
            }
        }
        durationProperty(p, "partnerTimeout", b::partnerTimeout);
        durationProperty(p, "heartbeatInterval", b::heartbeatInterval);
        if (p.getProperty("journalLimitRecords") != null) {
            b.journalLimitRecords(parseLong(p, "journalLimitRecords"));
        }
        durationProperty(p, "journalLimitAge", b::journalLimitAge);
        durationProperty(p, "journalCheckInterval", b::journalCheckInterval);
        durationProperty(p, "seedingTimeout", b::seedingTimeout);
        return b.build();
    }

    private static NodeConfig node(Properties p, String prefix) {
        try {
            return NodeConfig.of(required(p, prefix + ".name"), required(p, prefix + ".url"),
                    required(p, prefix + ".user"), p.getProperty(prefix + ".password", ""));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(prefix + ": " + e.getMessage(), e);
        }
    }

    private static String required(Properties p, String key) {
        String v = p.getProperty(key);
        if (v == null || v.isBlank()) {
            throw new IllegalArgumentException("setting '" + key + "' is required but missing");
        }
        return v.trim();
    }

    private static int parseInt(Properties p, String key) {
        try {
            return Integer.parseInt(p.getProperty(key).trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("setting '" + key + "' must be a whole number, got '" + p.getProperty(key) + "'");
        }
    }

    private static long parseLong(Properties p, String key) {
        try {
            return Long.parseLong(p.getProperty(key).trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("setting '" + key + "' must be a whole number, got '" + p.getProperty(key) + "'");
        }
    }

    private static void durationProperty(Properties p, String key, java.util.function.Consumer<Duration> setter) {
        String v = p.getProperty(key);
        if (v == null) {
            return;
        }
        try {
            setter.accept(Duration.parse(v.trim()));
        } catch (java.time.format.DateTimeParseException e) {
            throw new IllegalArgumentException("setting '" + key + "' must be an ISO-8601 duration such as PT10S, got '" + v + "'");
        }
    }

    @Override
    public String toString() {
        return "LockstepConfig[partnership=" + partnership + ", principal=" + principal + ", mirror=" + mirror
                + ", witness=" + witness + ", mode=" + mode + ", partnerTimeout=" + partnerTimeout
                + ", coordinator=" + coordinatorId + ", poolSize=" + poolSize + ", remoteCallTimeout=" + remoteCallTimeout + "]";
    }

    /** Builder of {@link LockstepConfig}; {@link #build()} validates. */
    public static final class Builder {
        private String partnership;
        private NodeConfig principal;
        private NodeConfig mirror;
        private String coordinatorId = UUID.randomUUID().toString().substring(0, 8);
        private int poolSize = 10;
        private Duration remoteCallTimeout = Duration.ofSeconds(10);
        private Duration connectTimeout = Duration.ofSeconds(5);
        private Duration inDoubtGrace = Duration.ofSeconds(60);
        private Duration resolverInterval = Duration.ofSeconds(5);
        private boolean installSchema = true;
        private Clock clock = Clock.systemUTC();
        private CommitObserver commitObserver = CommitObserver.NONE;
        private NodeConfig witness;
        private OperatingMode mode;
        private Duration partnerTimeout = Duration.ofSeconds(10);
        private Duration heartbeatInterval = Duration.ofSeconds(1);
        private final List<LockstepListener> listeners = new ArrayList<>();
        private WarningThresholds warningThresholds = WarningThresholds.DEFAULTS;
        private long journalLimitRecords = 10_000_000;
        private Duration journalLimitAge;
        private Duration journalCheckInterval = Duration.ofMinutes(1);
        private Duration seedingTimeout = Duration.ofHours(1);
        private JournalRetentionListener journalRetentionListener = JournalRetentionListener.NONE;

        private Builder() {
        }

        public Builder partnership(String v) { this.partnership = v; return this; }
        public Builder principal(NodeConfig v) { this.principal = v; return this; }
        public Builder mirror(NodeConfig v) { this.mirror = v; return this; }
        public Builder coordinatorId(String v) { this.coordinatorId = v; return this; }
        public Builder poolSize(int v) { this.poolSize = v; return this; }
        public Builder remoteCallTimeout(Duration v) { this.remoteCallTimeout = v; return this; }
        public Builder connectTimeout(Duration v) { this.connectTimeout = v; return this; }
        public Builder inDoubtGrace(Duration v) { this.inDoubtGrace = v; return this; }
        public Builder resolverInterval(Duration v) { this.resolverInterval = v; return this; }
        public Builder installSchema(boolean v) { this.installSchema = v; return this; }
        public Builder clock(Clock v) { this.clock = v; return this; }
        public Builder commitObserver(CommitObserver v) { this.commitObserver = v; return this; }
        public Builder witness(NodeConfig v) { this.witness = v; return this; }
        public Builder mode(OperatingMode v) { this.mode = v; return this; }
        public Builder partnerTimeout(Duration v) { this.partnerTimeout = v; return this; }
        public Builder heartbeatInterval(Duration v) { this.heartbeatInterval = v; return this; }
        /** Adds a listener of the partnership's events; see {@link LockstepListener}. */
        public Builder listener(LockstepListener v) { this.listeners.add(Objects.requireNonNull(v, "listener")); return this; }
        public Builder warningThresholds(WarningThresholds v) { this.warningThresholds = v; return this; }
        /** The most journal records kept while the mirror is away (at least 10; default 10,000,000). */
        public Builder journalLimitRecords(long v) { this.journalLimitRecords = v; return this; }
        /** The oldest a journal record may get while the mirror is away; null (the default) for no age limit. */
        public Builder journalLimitAge(Duration v) { this.journalLimitAge = v; return this; }
        /** How often the journal is trimmed or checked against its limit (default 1 min). */
        public Builder journalCheckInterval(Duration v) { this.journalCheckInterval = v; return this; }
        /** Deadline of the whole copy that seeds a mirror (default 1 h). */
        public Builder seedingTimeout(Duration v) { this.seedingTimeout = v; return this; }
        /** Told when the journal nears or passes its limit (default: none; Lockstep logs either way). */
        public Builder journalRetentionListener(JournalRetentionListener v) { this.journalRetentionListener = v; return this; }

        /**
         * Validates and builds.
         *
         * @return the configuration
         * @throws IllegalArgumentException naming the setting, the rule and the value received
         */
        public LockstepConfig build() {
            if (!Gid.isValidName(partnership)) {
                throw invalid("partnership", "1-63 characters of a-z, 0-9, _ and -, starting with a letter or digit", partnership);
            }
            if (principal == null) {
                throw invalid("principal", "is required", null);
            }
            if (mirror == null) {
                throw invalid("mirror", "is required", null);
            }
            if (principal.name().equals(mirror.name())) {
                throw invalid("mirror.name", "must differ from principal.name", mirror.name());
            }
            if (principal.jdbcUrl().equals(mirror.jdbcUrl())) {
                throw invalid("mirror.url", "must name a different database than principal.url (the same node named twice)", mirror.jdbcUrl());
            }
            if (!Gid.isValidName(coordinatorId) || coordinatorId.length() > 56) {
                throw invalid("coordinatorId", "1-56 characters of a-z, 0-9, _ and -", coordinatorId);
            }
            if (poolSize < 1 || poolSize > 1000) {
                throw invalid("poolSize", "must be between 1 and 1000", poolSize);
            }
            requireBetween("remoteCallTimeout", remoteCallTimeout, Duration.ofMillis(100), Duration.ofHours(1));
            requireBetween("connectTimeout", connectTimeout, Duration.ofMillis(100), Duration.ofMinutes(10));
            requireBetween("resolverInterval", resolverInterval, Duration.ofMillis(100), Duration.ofHours(1));
            // A live commit of another coordinator whose nodes answer keeps a transaction prepared
            // for its mirror connection and at most three calls (prepare, apply, commit), each
            // ended by its query timeout (the call timeout rounded up to a second).
            // One held longer by a frozen node or a black-holed link (sockets give up 5 s after
            // the call timeout) may be settled under it, and that stays safe: resolution bars the
            // gid on the mirror before it rolls back, so the late apply fails, and a commit
            // whose COMMIT PREPARED finds it settled reads the outcome from the journal.
            Duration call = Duration.ofSeconds(Math.max(1, (remoteCallTimeout.toMillis() + 999) / 1000));
            Duration minGrace = call.multipliedBy(3).plus(connectTimeout);
            if (inDoubtGrace == null || inDoubtGrace.compareTo(minGrace) < 0) {
                throw invalid("inDoubtGrace", "must be at least 3 x remoteCallTimeout (rounded up to seconds) + connectTimeout ("
                        + minGrace + ") so that in-doubt resolution leaves alone another coordinator's commit whose nodes"
                        + " answer within remoteCallTimeout", inDoubtGrace);
            }
            requireBetween("heartbeatInterval", heartbeatInterval, Duration.ofMillis(50), Duration.ofMinutes(1));
            requireBetween("partnerTimeout", partnerTimeout, Duration.ofMillis(500), Duration.ofHours(1));
            if (partnerTimeout.compareTo(heartbeatInterval.multipliedBy(3)) < 0) {
                throw invalid("partnerTimeout", "must be at least 3 x heartbeatInterval (" + heartbeatInterval.multipliedBy(3)
                        + ") so that a lost probe or two are not a failure", partnerTimeout);
            }
            if (mode == OperatingMode.HIGH_SAFETY_AUTOMATIC_FAILOVER && witness == null) {
                throw invalid("mode", "HIGH_SAFETY_AUTOMATIC_FAILOVER needs a witness (set witness.url)", mode);
            }
            if (mode == OperatingMode.HIGH_PERFORMANCE && witness != null) {
                throw invalid("mode", "HIGH_PERFORMANCE (asynchronous) runs without a witness, as SQL Server advises"
                        + " (WITNESS OFF): failover is forced service only; remove witness.url", mode);
            }
            if (witness != null && (witness.name().equals(principal.name()) || witness.name().equals(mirror.name()))) {
                throw invalid("witness.name", "must differ from the partners' names", witness.name());
            }
            if (journalLimitRecords < 10) {
                throw invalid("journalLimitRecords", "must be at least 10", journalLimitRecords);
            }
            if (journalLimitAge != null) {
                requireBetween("journalLimitAge", journalLimitAge, Duration.ofSeconds(1), Duration.ofDays(3650));
            }
            requireBetween("journalCheckInterval", journalCheckInterval, Duration.ofMillis(100), Duration.ofHours(1));
            requireBetween("seedingTimeout", seedingTimeout, Duration.ofSeconds(1), Duration.ofDays(7));
            if (journalRetentionListener == null) {
                throw invalid("journalRetentionListener", "is required (JournalRetentionListener.NONE for none)", null);
            }
            Objects.requireNonNull(clock, "clock");
            Objects.requireNonNull(commitObserver, "commitObserver");
            if (warningThresholds == null) {
                throw invalid("warningThresholds", "is required", null);
            }
            return new LockstepConfig(this);
        }

        private static void requireBetween(String setting, Duration value, Duration min, Duration max) {
            if (value == null || value.compareTo(min) < 0 || value.compareTo(max) > 0) {
                throw invalid(setting, "must be between " + min + " and " + max, value);
            }
        }

        private static IllegalArgumentException invalid(String setting, String rule, Object value) {
            return new IllegalArgumentException("invalid setting '" + setting + "': " + rule + "; got " + value);
        }
    }
}
