package io.jbackup.store;

import io.jbackup.error.UsageException;

import java.time.Duration;
import java.util.function.Supplier;

/**
 * How {@link Repository#open} opens a repository.
 *
 * @param passphrase    asked only if the repository is encrypted (may be null otherwise); the returned array is
 *                      wiped after use
 * @param lockMode      {@link LockMode#SHARED} for backups and restores, {@link LockMode#EXCLUSIVE} for maintenance
 * @param waitLock      how long to wait for a conflicting lock to go away before failing (zero: fail at once)
 * @param workerThreads size of the hash/compress/encrypt pool; 0 means one per available processor
 * @param keyOptional   for commands that read only the catalog ({@code list}, {@code show}): when the repository is
 *                      encrypted and {@code passphrase} supplies nothing, open it without its key. Such an instance
 *                      only answers catalog queries; everything that needs the key fails with
 *                      {@link PassphraseRequiredException} ({@link Repository#hasKey()} is false)
 */
public record OpenOptions(Supplier<char[]> passphrase, LockMode lockMode, Duration waitLock, int workerThreads,
                          boolean keyOptional) {
    public static final int MAX_WORKER_THREADS = 256;

    public OpenOptions {
        lockMode = lockMode == null ? LockMode.SHARED : lockMode;
        waitLock = waitLock == null ? Duration.ZERO : waitLock;
        if (waitLock.isNegative()) {
            throw new UsageException("lock wait " + waitLock + " is negative");
        }
        if (workerThreads < 0 || workerThreads > MAX_WORKER_THREADS) {
            throw new UsageException("worker threads " + workerThreads + " out of range (expected: 0 for "
                + "one per processor, or 1.." + MAX_WORKER_THREADS + ")");
        }
    }

    /** Shared lock, no wait, no passphrase, one worker per processor. */
    public static OpenOptions defaults() {
        return new OpenOptions(null, LockMode.SHARED, Duration.ZERO, 0, false);
    }

    public OpenOptions withPassphrase(Supplier<char[]> p) {
        return new OpenOptions(p, lockMode, waitLock, workerThreads, keyOptional);
    }

    /** A passphrase given as a string (tests and callers that already hold it). */
    public OpenOptions withPassphrase(String p) {
        return withPassphrase(p == null ? null : p::toCharArray);
    }

    public OpenOptions withLockMode(LockMode m) {
        return new OpenOptions(passphrase, m, waitLock, workerThreads, keyOptional);
    }

    public OpenOptions withWaitLock(Duration d) {
        return new OpenOptions(passphrase, lockMode, d, workerThreads, keyOptional);
    }

    public OpenOptions withWorkerThreads(int n) {
        return new OpenOptions(passphrase, lockMode, waitLock, n, keyOptional);
    }

    /** See {@link #keyOptional()}. */
    public OpenOptions withKeyOptional(boolean optional) {
        return new OpenOptions(passphrase, lockMode, waitLock, workerThreads, optional);
    }

    /** The effective number of worker threads. */
    int effectiveWorkers() {
        return workerThreads == 0 ? Math.max(1, Runtime.getRuntime().availableProcessors()) : workerThreads;
    }
}
