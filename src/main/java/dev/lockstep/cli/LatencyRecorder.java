package dev.lockstep.cli;

import java.util.Arrays;

/**
 * Latencies of whole transactions, in nanoseconds, kept in a growing {@code long[]}. One
 * recorder per client thread (not thread-safe); {@link #merge} the recorders after the run.
 * Memory is bounded: beyond {@link #MAX_SAMPLES} samples only the count grows.
 */
public final class LatencyRecorder {

    /** The most samples one recorder keeps (8 bytes each). */
    public static final int MAX_SAMPLES = 4_000_000;

    private long[] samples = new long[1024];
    private int size;
    private long count;
    private boolean sorted = true;

    /** Records one latency. */
    public synchronized void record(long nanos) {
        count++;
        if (size == samples.length) {
            if (size >= MAX_SAMPLES) {
                return;
            }
            samples = Arrays.copyOf(samples, Math.min(MAX_SAMPLES, size * 2));
        }
        samples[size++] = nanos;
        sorted = false;
    }

    /** How many latencies were recorded (kept or not). */
    public synchronized long count() {
        return count;
    }

    /** One recorder holding the samples of all given recorders. */
    public static LatencyRecorder merge(Iterable<LatencyRecorder> recorders) {
        LatencyRecorder all = new LatencyRecorder();
        for (LatencyRecorder r : recorders) {
            synchronized (r) {
                all.count += r.count;
                long[] grown = Arrays.copyOf(all.samples, Math.max(1, all.size + r.size));
                System.arraycopy(r.samples, 0, grown, all.size, r.size);
                all.samples = grown;
                all.size += r.size;
            }
        }
        all.sorted = all.size <= 1;
        return all;
    }

    /**
     * The latency at a percentile (nearest rank), in milliseconds; 0 when nothing was recorded.
     *
     * @param percentile between 0 and 100
     */
    public synchronized double percentileMillis(double percentile) {
        if (size == 0) {
            return 0;
        }
        if (!sorted) {
            Arrays.sort(samples, 0, size);
            sorted = true;
        }
        int rank = (int) Math.ceil(percentile / 100.0 * size);
        return samples[Math.min(size - 1, Math.max(0, rank - 1))] / 1e6;
    }
}
