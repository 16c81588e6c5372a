package io.jbackup.store;

import java.net.InetAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.Optional;

/**
 * Identifies a process: host name, pid and start time ({@code host/pid/startMillis}). Recorded with lock files,
 * temporary directories and incomplete backups, so a later process can tell whether their owner is still alive
 * (same host: pid running with the same start time) and clean up after a dead one.
 */
public record Owner(String host, long pid, long startMillis) {
    private static final Owner CURRENT = detect();

    public static Owner current() {
        return CURRENT;
    }

    private static Owner detect() {
        ProcessHandle self = ProcessHandle.current();
        long start = self.info().startInstant().map(Instant::toEpochMilli).orElse(0L);
        return new Owner(hostName(), self.pid(), start);
    }

    /** The host name, from the most stable source first: /etc/hostname, $HOSTNAME, then the resolver. */
    private static String hostName() {
        String h = null;
        try {
            h = Files.readString(Path.of("/etc/hostname")).trim();
        } catch (Exception e) {
            // not Linux, or not readable: next source
        }
        if (h == null || h.isBlank()) {
            h = System.getenv("HOSTNAME");
        }
        if (h == null || h.isBlank()) {
            try {
                h = InetAddress.getLocalHost().getHostName();
            } catch (Exception e) {
                h = "localhost";
            }
        }
        return h;
    }

    /** {@code host/pid/startMillis}. */
    public String id() {
        return host + "/" + pid + "/" + startMillis;
    }

    /** A file-name-safe form of {@link #id()}. */
    String token() {
        return sanitize(host) + "-" + pid + "-" + startMillis;
    }

    /** Parses an {@link #id()}. */
    public static Optional<Owner> parse(String id) {
        return id == null ? Optional.empty() : split(id, '/');
    }

    /** Parses a {@link #token()}; the host part may have been sanitised. */
    static Optional<Owner> parseToken(String token) {
        return split(token, '-');
    }

    private static Optional<Owner> split(String s, char sep) {
        int b = s.lastIndexOf(sep);
        int a = b < 0 ? -1 : s.lastIndexOf(sep, b - 1);
        if (a < 0) {
            return Optional.empty();
        }
        try {
            return Optional.of(new Owner(s.substring(0, a), Long.parseLong(s.substring(a + 1, b)),
                Long.parseLong(s.substring(b + 1))));
        } catch (NumberFormatException e) {
            return Optional.empty();
        }
    }

    private static String sanitize(String h) {
        return h.replaceAll("[^A-Za-z0-9.]", "_");
    }

    boolean sameHost() {
        return host.equals(CURRENT.host) || host.equals(sanitize(CURRENT.host));
    }

    /**
     * Whether this owner is known to be dead: it ran on this host and its pid is gone or now belongs to a process
     * started at another time. Owners on other hosts are never known dead.
     */
    public boolean knownDead() {
        if (!sameHost()) {
            return false;
        }
        if (pid == CURRENT.pid) {
            return startMillis != CURRENT.startMillis;
        }
        Optional<ProcessHandle> h = ProcessHandle.of(pid);
        if (h.isEmpty() || !h.get().isAlive()) {
            return true;
        }
        Optional<Instant> start = h.get().info().startInstant();
        return start.isPresent() && startMillis != 0 && Math.abs(start.get().toEpochMilli() - startMillis) > 1000;
    }
}
