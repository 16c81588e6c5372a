package io.jbackup.objectstore;

import software.amazon.awssdk.services.s3.model.StorageClass;

import java.time.Duration;
import java.util.Locale;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;

/**
 * How {@link S3ObjectStore} moves bytes over an unreliable network: retries, timeouts, upload parallelism and
 * bandwidth, and the storage class of what it writes.
 *
 * @param attempts          how often a request is tried in all ({@code --s3-retries} + 1), with exponential backoff
 *                          and jitter between attempts, capped at {@code maxBackoff}
 * @param attemptTimeout    how long one attempt of a request may take before it is abandoned and retried
 *                          ({@code --s3-timeout}); uploads get more time for their bytes at the upload limit
 * @param maxBackoff        the longest wait between two attempts
 * @param uploadConcurrency how many parts of a multipart upload are sent at once
 * @param uploadLimit       the most bytes per second sent by all uploads together ({@code --limit-upload}), 0 for
 *                          no limit
 * @param storageClass      the S3 storage class of every object written ({@code --s3-storage-class}), or null for the
 *                          bucket's default (STANDARD)
 */
public record S3Transfer(int attempts, Duration attemptTimeout, Duration maxBackoff, int uploadConcurrency,
        long uploadLimit, String storageClass) {

    /** Storage classes whose objects cannot be read without a restore request first. */
    static final Set<StorageClass> ARCHIVED = Set.of(StorageClass.GLACIER, StorageClass.DEEP_ARCHIVE);

    public S3Transfer {
        Objects.requireNonNull(attemptTimeout, "attemptTimeout");
        Objects.requireNonNull(maxBackoff, "maxBackoff");
        if (attempts < 1 || uploadConcurrency < 1 || uploadLimit < 0 || attemptTimeout.isNegative()
            || attemptTimeout.isZero() || maxBackoff.isNegative()) {
            throw new IllegalArgumentException("attempts " + attempts + " (>= 1), timeout " + attemptTimeout
                + " (> 0), upload concurrency " + uploadConcurrency + " (>= 1), upload limit " + uploadLimit);
        }
        if (storageClass != null) {
            storageClass = storageClass.trim().toUpperCase(Locale.ROOT);
            Optional<String> problem = storageClassProblem(storageClass);
            if (problem.isPresent()) {
                throw new IllegalArgumentException(problem.get());
            }
        }
    }

    /** 8 attempts, 30 s per attempt, backoff up to 5 s, 4 parts at once, no upload limit, the bucket's class. */
    public static S3Transfer defaults() {
        return new S3Transfer(8, Duration.ofSeconds(30), Duration.ofSeconds(5), 4, 0, null);
    }

    /**
     * Why {@code storageClass} cannot hold a repository, or empty when it can: an unknown name, or an archive class
     * (GLACIER, DEEP_ARCHIVE) whose objects a restore must bring back before any read.
     */
    public static Optional<String> storageClassProblem(String storageClass) {
        String name = storageClass.trim().toUpperCase(Locale.ROOT);
        StorageClass c = StorageClass.fromValue(name);
        if (c == null || c == StorageClass.UNKNOWN_TO_SDK_VERSION) {
            return Optional.of("unknown S3 storage class " + storageClass + ": use one of " + readable());
        }
        if (ARCHIVED.contains(c)) {
            return Optional.of("storage class " + name + " cannot be read back without a restore request, and "
                + "jbackup reads its packs, indexes and manifests at any time; use " + readable()
                + ", and a bucket lifecycle rule to move old objects to a colder class if you must");
        }
        return Optional.empty();
    }

    private static String readable() {
        StringBuilder b = new StringBuilder();
        for (StorageClass c : StorageClass.knownValues()) {
            if (!ARCHIVED.contains(c)) {
                b.append(b.isEmpty() ? "" : ", ").append(c);
            }
        }
        return b.toString();
    }

    public S3Transfer withAttempts(int n) {
        return new S3Transfer(n, attemptTimeout, maxBackoff, uploadConcurrency, uploadLimit, storageClass);
    }

    public S3Transfer withAttemptTimeout(Duration d) {
        return new S3Transfer(attempts, d, maxBackoff, uploadConcurrency, uploadLimit, storageClass);
    }

    public S3Transfer withMaxBackoff(Duration d) {
        return new S3Transfer(attempts, attemptTimeout, d, uploadConcurrency, uploadLimit, storageClass);
    }

    public S3Transfer withUploadConcurrency(int n) {
        return new S3Transfer(attempts, attemptTimeout, maxBackoff, n, uploadLimit, storageClass);
    }

    public S3Transfer withUploadLimit(long bytesPerSecond) {
        return new S3Transfer(attempts, attemptTimeout, maxBackoff, uploadConcurrency, bytesPerSecond, storageClass);
    }

    public S3Transfer withStorageClass(String c) {
        return new S3Transfer(attempts, attemptTimeout, maxBackoff, uploadConcurrency, uploadLimit, c);
    }

    /** The attempt timeout for an upload of {@code bytes}: the base, plus their time at the upload limit. */
    Duration uploadTimeout(long bytes) {
        if (uploadLimit == 0) {
            return attemptTimeout;
        }
        return attemptTimeout.plusSeconds((bytes * uploadConcurrency) / uploadLimit + 1);
    }
}
