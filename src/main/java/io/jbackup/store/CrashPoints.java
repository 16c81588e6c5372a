package io.jbackup.store;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * Test hook for the crash-safety test: when the system property {@code jbackup.test.crashAt} (or the environment
 * variable {@code JBACKUP_TEST_CRASH_AT}) names a step, as {@code step} or {@code step:N} (the N-th time it is
 * reached), the JVM halts there at once, like {@code kill -9}: no shutdown hooks, no finally blocks. Steps, in the
 * order a commit reaches them:
 * <ul>
 *   <li>{@code pack-written}: pack records and footer written, before fsync;</li>
 *   <li>{@code pack-synced}: pack fsynced and renamed, before its catalog rows;</li>
 *   <li>{@code pack-registered}: catalog rows committed;</li>
 *   <li>{@code index-written}: index written to its temporary name and fsynced, before the rename;</li>
 *   <li>{@code index-renamed}: index renamed into place, before the backup is marked complete;</li>
 *   <li>{@code backup-completed}: the backup is marked complete.</li>
 * </ul>
 * Without the property this costs one static field read per step.
 */
final class CrashPoints {
    private static final String SPEC = spec();
    private static final String STEP;
    private static final int NTH;
    private static final AtomicInteger HITS = new AtomicInteger();

    static {
        if (SPEC == null) {
            STEP = null;
            NTH = 0;
        } else {
            int colon = SPEC.indexOf(':');
            STEP = colon < 0 ? SPEC : SPEC.substring(0, colon);
            NTH = colon < 0 ? 1 : Integer.parseInt(SPEC.substring(colon + 1));
        }
    }

    private CrashPoints() {
    }

    private static String spec() {
        String s = System.getProperty("jbackup.test.crashAt");
        if (s == null || s.isEmpty()) {
            s = System.getenv("JBACKUP_TEST_CRASH_AT");
        }
        return s == null || s.isEmpty() ? null : s;
    }

    static void reached(String step) {
        if (STEP != null && STEP.equals(step) && HITS.incrementAndGet() == NTH) {
            Runtime.getRuntime().halt(137);
        }
    }
}
