package io.jbackup.objectstore;

import software.amazon.awssdk.awscore.retry.AwsRetryStrategy;
import software.amazon.awssdk.core.exception.SdkException;
import software.amazon.awssdk.retries.api.BackoffStrategy;
import software.amazon.awssdk.retries.api.RetryStrategy;

import java.io.InterruptedIOException;
import java.time.Duration;
import java.util.function.Supplier;

/**
 * The retry policy of {@link S3ObjectStore}. The SDK retries whole requests that fail with a 5xx, a throttling
 * answer (503 SlowDown, 429), a reset connection or an attempt timeout, {@link S3Transfer#attempts()} times in all,
 * with exponential backoff and full jitter from {@value #BASE_MILLIS} ms up to {@link S3Transfer#maxBackoff()}; it has
 * no circuit breaker (a backup would rather wait than fail). Where the SDK cannot retry, because the failure comes
 * after the request returned (a GET body cut halfway), the store loops itself and waits {@link #pause} between tries.
 */
final class S3Retries {
    static final long BASE_MILLIS = 100;

    private final BackoffStrategy backoff;
    private final int attempts;

    S3Retries(S3Transfer transfer) {
        this.attempts = transfer.attempts();
        this.backoff = BackoffStrategy.exponentialDelay(Duration.ofMillis(BASE_MILLIS), transfer.maxBackoff());
    }

    /** The SDK's strategy for {@code transfer}. */
    static RetryStrategy strategy(S3Transfer transfer) {
        BackoffStrategy b = BackoffStrategy.exponentialDelay(Duration.ofMillis(BASE_MILLIS), transfer.maxBackoff());
        return AwsRetryStrategy.standardRetryStrategy().toBuilder()
            .maxAttempts(transfer.attempts())
            .backoffStrategy(b)
            .throttlingBackoffStrategy(b)
            .circuitBreakerEnabled(false)
            .build();
    }

    /**
     * The result of {@code call}, which is tried again, {@code attempts} times in all, when its answer broke off
     * ({@link S3Errors#truncated}): a listing is safe to repeat; a completion repeated gets NoSuchUpload, which
     * {@link S3Multipart} settles.
     */
    <T> T again(Supplier<T> call) throws InterruptedIOException {
        for (int attempt = 1; ; attempt++) {
            try {
                return call.get();
            } catch (SdkException e) {
                if (attempt >= attempts || !S3Errors.truncated(e)) {
                    throw e;
                }
            }
            pause(attempt);
        }
    }

    /** Waits before retry number {@code attempt} (1: the first retry) of the store's own loops. */
    void pause(int attempt) throws InterruptedIOException {
        try {
            Thread.sleep(backoff.computeDelay(attempt).toMillis());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while waiting to retry an S3 request");
        }
    }
}
