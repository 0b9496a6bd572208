package dev.lockstep.health;

import java.io.EOFException;
import java.net.ConnectException;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.util.concurrent.TimeoutException;

/**
 * The outcome of one probe.
 *
 * @param ok          the node answered within the deadline
 * @param hardFailure the connection was refused or reset: the node is down, not merely slow
 * @param detail      what happened, for logs and status
 * @param incarnation when the node's server started and which database it serves (its oid), as it
 *                    reports them; null unless it answered. A new value means that the server
 *                    restarted between two probes, however briefly, or that the database was replaced.
 */
public record ProbeResult(boolean ok, boolean hardFailure, String detail, String incarnation) {

    /**
     * A probe that says nothing of the node's incarnation.
     *
     * @param ok          the node answered within the deadline
     * @param hardFailure the connection was refused or reset
     * @param detail      what happened
     */
    public ProbeResult(boolean ok, boolean hardFailure, String detail) {
        this(ok, hardFailure, detail, null);
    }

    /**
     * The node answered.
     *
     * @param incarnation its server's start time and its database's oid
     */
    public static ProbeResult answered(String incarnation) {
        return new ProbeResult(true, false, "answered", incarnation);
    }

    /**
     * Classifies a failed probe: refused, reset and closed connections are hard failures;
     * timeouts and anything else count as silence, which only the partner timeout turns into a
     * failure.
     *
     * @param failure why the probe failed
     * @return the result
     */
    public static ProbeResult failed(Throwable failure) {
        boolean hard = false;
        for (Throwable t = failure; t != null; t = t.getCause()) {
            if (t instanceof SocketTimeoutException || t instanceof TimeoutException) {
                hard = false;
                break;
            }
            if (t instanceof ConnectException || t instanceof EOFException
                    || (t instanceof SocketException && isResetOrClosed(t.getMessage()))) {
                hard = true;
            }
        }
        return new ProbeResult(false, hard, String.valueOf(failure.getMessage()));
    }

    private static boolean isResetOrClosed(String message) {
        if (message == null) {
            return false;
        }
        String m = message.toLowerCase(java.util.Locale.ROOT);
        return m.contains("reset") || m.contains("broken pipe") || m.contains("refused") || m.contains("closed");
    }
}
