package io.jbackup.store;

import io.jbackup.objectstore.S3Settings;
import io.jbackup.objectstore.S3Transfer;

import java.time.Duration;

/**
 * The transfer options of an {@code s3://} repository given on the command line; null fields keep the defaults of
 * {@link S3Transfer#defaults()}.
 *
 * @param retries      {@code --s3-retries N}: retries after the first attempt of a request
 * @param timeout      {@code --s3-timeout DURATION}: the longest one attempt of a request may take
 * @param uploadLimit  {@code --limit-upload RATE}: bytes per second for all uploads together
 * @param storageClass {@code --s3-storage-class CLASS}: the storage class of every object written
 */
public record S3Options(Integer retries, Duration timeout, Long uploadLimit, String storageClass) {
    /** No options: the defaults. */
    public static final S3Options NONE = new S3Options(null, null, null, null);

    /** {@code settings} with these options. */
    S3Settings apply(S3Settings settings) {
        S3Transfer t = settings.transfer();
        if (retries != null) {
            t = t.withAttempts(retries + 1);
        }
        if (timeout != null) {
            t = t.withAttemptTimeout(timeout);
        }
        if (uploadLimit != null) {
            t = t.withUploadLimit(uploadLimit);
        }
        if (storageClass != null) {
            t = t.withStorageClass(storageClass);
        }
        return settings.withTransfer(t);
    }
}
