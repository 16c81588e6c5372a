package io.jbackup.store;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.Instant;
import java.util.HashSet;
import java.util.Optional;
import java.util.Set;

/**
 * A named exclusive lock between processes and threads: an OS file lock on {@code file}, plus a JVM-wide set of
 * held files (Java file locks belong to the whole JVM, so two threads of one process are kept apart here). While
 * held, the file contains one line naming the holder ({@code pid}, host, since, what), which {@link #holder} reads
 * for messages. The OS releases the lock when the process dies, so it cannot go stale; the leftover text is only
 * informative.
 *
 * <p>Used for gc and prune ({@code DIR/gc.lock}: one maintenance run at a time) and for scheduled backups
 * ({@code DIR/locks/disk-*.lock}: one backup of a disk at a time).
 */
public final class FileMutex implements AutoCloseable {
    private static final Set<Path> HELD = new HashSet<>();
    private static final long POLL_MILLIS = 100;
    private static final int MAX_HOLDER_TEXT = 1024;

    private final Path key;
    private final FileChannel ch;
    private final FileLock lock;
    private boolean released;

    private FileMutex(Path key, FileChannel ch, FileLock lock) {
        this.key = key;
        this.ch = ch;
        this.lock = lock;
    }

    /** Takes the lock if it is free; {@code what} describes the holder for others' messages. */
    public static Optional<FileMutex> tryAcquire(Path file, String what) throws IOException {
        Files.createDirectories(file.toAbsolutePath().getParent());
        Path key = file.toAbsolutePath().normalize();
        synchronized (HELD) {
            if (HELD.contains(key)) {
                return Optional.empty();
            }
            FileChannel ch = FileChannel.open(key, StandardOpenOption.CREATE, StandardOpenOption.READ,
                StandardOpenOption.WRITE);
            FileLock fl;
            try {
                fl = ch.tryLock();
            } catch (IOException | RuntimeException e) {
                ch.close();
                throw e;
            }
            if (fl == null) {
                ch.close();
                return Optional.empty();
            }
            try {
                Instant since = Instant.now().truncatedTo(java.time.temporal.ChronoUnit.SECONDS); // read by people
                String text = Holder.line(ProcessHandle.current().pid(), Owner.current().host(), since, what) + "\n";
                byte[] b = text.getBytes(StandardCharsets.UTF_8);
                ch.truncate(0);
                FileSync.writeFully(ch, ByteBuffer.wrap(b, 0, Math.min(b.length, MAX_HOLDER_TEXT)), 0);
            } catch (IOException e) {
                fl.release();
                ch.close();
                throw e;
            }
            HELD.add(key);
            return Optional.of(new FileMutex(key, ch, fl));
        }
    }

    /**
     * Takes the lock, waiting up to {@code wait} for its holder; throws {@link RepositoryLockedException} naming the
     * holder when it cannot.
     */
    public static FileMutex acquire(Path file, String what, Duration wait) throws IOException {
        long deadline = System.nanoTime() + Math.min(wait.toNanos(), Long.MAX_VALUE / 4);
        while (true) {
            Optional<FileMutex> m = tryAcquire(file, what);
            if (m.isPresent()) {
                return m.get();
            }
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                throw new RepositoryLockedException(file + " is locked by " + holder(file) + "; "
                    + (wait.isZero() ? "retry later, or wait for it with --wait-lock[=DURATION]"
                    : "gave up after waiting " + DiskLock.describe(wait)));
            }
            try {
                Thread.sleep(Math.max(1, Math.min(POLL_MILLIS, left / 1_000_000)));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("interrupted while waiting for " + file);
            }
        }
    }

    /**
     * The holder of a lock as its line records it: {@code pid N on HOST since INSTANT: WHAT}.
     *
     * @param pid   process id of the holder
     * @param host  host it runs on
     * @param since when it took the lock
     * @param what  what it does (command, VM, disk)
     */
    public record Holder(long pid, String host, Instant since, String what) {
        private static final java.util.regex.Pattern LINE =
            java.util.regex.Pattern.compile("pid (\\d+) on (\\S+) since (\\S+): (.*)", java.util.regex.Pattern.DOTALL);

        static String line(long pid, String host, Instant since, String what) {
            return "pid " + pid + " on " + host + " since " + since + ": " + what;
        }

        /** Parses a holder line; empty when it is not one (an older or damaged file). */
        static Optional<Holder> parse(String text) {
            java.util.regex.Matcher m = LINE.matcher(text.trim());
            if (!m.matches()) {
                return Optional.empty();
            }
            try {
                return Optional.of(new Holder(Long.parseLong(m.group(1)), m.group(2), Instant.parse(m.group(3)),
                    m.group(4)));
            } catch (RuntimeException e) {
                return Optional.empty();
            }
        }
    }

    /** The holder of the lock on {@code file} as written by it, if the file names one. */
    public static Optional<Holder> holderOf(Path file) {
        return Holder.parse(holder(file));
    }

    /** Who holds (or last held) the lock, as written by its holder. */
    public static String holder(Path file) {
        try {
            byte[] b = Files.readAllBytes(file);
            String s = new String(b, 0, Math.min(b.length, MAX_HOLDER_TEXT), StandardCharsets.UTF_8).trim();
            return s.isEmpty() ? "another process" : s;
        } catch (IOException e) {
            return "another process";
        }
    }

    @Override
    public void close() {
        synchronized (HELD) {
            if (released) {
                return;
            }
            released = true;
            HELD.remove(key);
            try {
                lock.release();
                ch.close();
            } catch (IOException ignored) {
                // closing the channel releases the lock in any case
            }
        }
    }
}
