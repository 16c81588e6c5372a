package io.jbackup.model;

import java.nio.file.Path;
import java.util.Locale;

/**
 * The repository's file system is full (ENOSPC, or SQLite's {@code SQLITE_FULL}), or a repository file reached the
 * process's file size limit (EFBIG, {@code ulimit -f}). What was being written is abandoned and the repository stays
 * consistent; the message names the file system and the way out: free space, then {@code jbackup gc} to reclaim
 * what the failed command left (packs sealed before the failure are kept, and reused by the next backup, until gc).
 */
public final class RepositoryFullException extends RepositoryException {
    private static final long serialVersionUID = 1L;

    private RepositoryFullException(String message, Throwable cause) {
        super(message, cause);
    }

    /** Whether {@code t} or one of its causes says the file system is full or a file too large. */
    public static boolean isFull(Throwable t) {
        return kind(t) != null;
    }

    /**
     * {@code t} as a {@link RepositoryFullException} for repository {@code repoDir} when it is a full-disk error
     * (returned unchanged when it already is one); null when it is not.
     */
    public static RepositoryFullException of(Path repoDir, Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (c instanceof RepositoryFullException f) {
                return f;
            }
        }
        String kind = kind(t);
        if (kind == null) {
            return null;
        }
        String gc = "then run 'jbackup gc --repo " + repoDir + "' to reclaim what the failed command left "
            + "(complete backups are not affected)";
        if (kind.equals("limit")) {
            return new RepositoryFullException("a file in repository " + repoDir + " reached this process's file size "
                + "limit (" + firstMessage(t) + "); raise the limit (ulimit -f) for jbackup, " + gc, t);
        }
        return new RepositoryFullException("the file system of repository " + repoDir + " is full ("
            + firstMessage(t) + "); free space there (or move the repository to a larger disk), " + gc, t);
    }

    /** {@code t} translated by {@link #of} when it is a full-disk error, else {@code t} itself. */
    public static Throwable translate(Path repoDir, Throwable t) {
        RepositoryFullException f = of(repoDir, t);
        return f == null ? t : f;
    }

    private static String kind(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (c instanceof org.sqlite.SQLiteException se && isFull(se.getResultCode())) {
                return "full";
            }
            String m = c.getMessage();
            if (m == null) {
                continue;
            }
            String l = m.toLowerCase(Locale.ROOT);
            if (l.contains("file too large")) {
                return "limit";
            }
            if (l.contains("no space left on device") || l.contains("disk quota exceeded")
                || l.contains("sqlite_full") || l.contains("database or disk is full")) {
                return "full";
            }
        }
        return null;
    }

    /**
     * SQLite's codes for a file system without room: SQLITE_FULL, and the shared-memory index of the write-ahead
     * log that cannot grow (SQLITE_IOERR_SHMSIZE: its -shm file is extended when the log grows, also by readers).
     */
    private static boolean isFull(org.sqlite.SQLiteErrorCode code) {
        return code == org.sqlite.SQLiteErrorCode.SQLITE_FULL || code == org.sqlite.SQLiteErrorCode.SQLITE_IOERR_SHMSIZE;
    }

    private static String firstMessage(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            String m = c.getMessage();
            if (m != null && kind(new Exception(m)) != null) {
                return m;
            }
        }
        return String.valueOf(t.getMessage());
    }
}
