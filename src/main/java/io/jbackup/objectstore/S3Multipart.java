package io.jbackup.objectstore;

import software.amazon.awssdk.awscore.exception.AwsServiceException;
import software.amazon.awssdk.core.exception.SdkClientException;
import software.amazon.awssdk.core.exception.SdkException;
import software.amazon.awssdk.core.sync.RequestBody;
import software.amazon.awssdk.services.s3.S3Client;
import software.amazon.awssdk.services.s3.model.CompletedPart;
import software.amazon.awssdk.services.s3.model.HeadObjectResponse;

import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * One multipart upload: parts of {@code partSize} bytes sent up to {@link S3Transfer#uploadConcurrency()} at a time
 * on the store's upload threads, each streamed from its offset in the source (memory: a copy buffer per part in
 * flight, never a whole part), through the upload limiter; then the completion, which carries the conditions. The
 * object appears only then.
 * <ul>
 *   <li>Any failure waits for the parts in flight and aborts the upload, so no parts are left behind to be
 *       billed.</li>
 *   <li>A completion whose answer was lost is tried again and may get {@code NoSuchUpload} (the first one
 *       completed it), or an empty answer: when the object is there with the right size (and our nonce, for a
 *       conditional write), that is success.</li>
 * </ul>
 */
final class S3Multipart {
    private final S3Client s3;
    private final String bucket;
    private final String key;
    private final long partSize;
    private final S3Transfer transfer;
    private final UploadLimiter limiter;
    private final ExecutorService pool;
    private final S3Retries retries;

    /** An upload of {@code key} in parts; {@code limiter} null for no limit; the parts run on {@code pool}. */
    S3Multipart(S3Client s3, String bucket, String key, long partSize, S3Transfer transfer, UploadLimiter limiter,
            ExecutorService pool, S3Retries retries) {
        this.retries = retries;
        this.s3 = s3;
        this.bucket = bucket;
        this.key = key;
        this.partSize = partSize;
        this.transfer = transfer;
        this.limiter = limiter;
        this.pool = pool;
    }

    /** Uploads {@code data}; {@code ifNoneMatch}/{@code ifMatch} apply to the completion when not null. */
    String upload(ObjectSource data, Map<String, String> meta, String ifNoneMatch, String ifMatch)
            throws IOException {
        String id = s3.createMultipartUpload(r -> r.bucket(bucket).key(key).metadata(meta)
            .storageClass(transfer.storageClass())).uploadId();
        long length = data.length();
        boolean done = false;
        AtomicBoolean failed = new AtomicBoolean();
        List<Future<CompletedPart>> futures = new ArrayList<>();
        try {
            for (int n = 1; (long) (n - 1) * partSize < length; n++) {
                int number = n;
                long offset = (n - 1) * partSize;
                long size = Math.min(partSize, length - offset);
                futures.add(pool.submit(() -> failed.get() ? null : part(data, id, number, offset, size)));
            }
            List<CompletedPart> parts = new ArrayList<>(futures.size());
            for (Future<CompletedPart> f : futures) {
                parts.add(await(f, failed));
            }
            String etag = complete(id, parts, meta, length, ifNoneMatch, ifMatch);
            done = true;
            return etag;
        } finally {
            if (!done) {
                failed.set(true);
                for (Future<CompletedPart> f : futures) {
                    try {
                        f.get();
                    } catch (ExecutionException | InterruptedException | RuntimeException e) {
                        // already reported, or the abort below makes it moot
                    }
                }
                abort(id);
            }
        }
    }

    private CompletedPart part(ObjectSource data, String id, int number, long offset, long size) {
        RequestBody body = RequestBody.fromContentProvider(() -> {
            try {
                InputStream in = SourceFailure.guard(slice(data.open(offset), size));
                return limiter == null ? in : limiter.wrap(in);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }, size, "application/octet-stream");
        String etag = s3.uploadPart(r -> r.bucket(bucket).key(key).uploadId(id).partNumber(number)
            .contentLength(size).overrideConfiguration(c -> c.apiCallAttemptTimeout(transfer.uploadTimeout(size))),
            body).eTag();
        return CompletedPart.builder().partNumber(number).eTag(etag).build();
    }

    private static CompletedPart await(Future<CompletedPart> f, AtomicBoolean failed) throws IOException {
        try {
            return f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted during a multipart upload");
        } catch (ExecutionException e) {
            failed.set(true);
            if (e.getCause() instanceof RuntimeException r) {
                throw r;
            }
            throw new IOException(e.getCause());
        }
    }

    private String complete(String id, List<CompletedPart> parts, Map<String, String> meta, long length,
            String ifNoneMatch, String ifMatch) throws IOException {
        String etag;
        try {
            etag = retries.again(() -> s3.completeMultipartUpload(r -> r.bucket(bucket).key(key).uploadId(id)
                .ifNoneMatch(ifNoneMatch).ifMatch(ifMatch).multipartUpload(u -> u.parts(parts))).eTag());
        } catch (AwsServiceException e) {
            if (!"NoSuchUpload".equals(S3Errors.code(e))) {
                throw e;
            }
            return landed(meta, length).orElseThrow(() -> e);
        }
        if (etag == null) {
            SdkClientException lost = SdkClientException.create("the completion of " + key + " answered no ETag");
            return landed(meta, length).orElseThrow(() -> lost);
        }
        return etag;
    }

    /** The ETag of our object when a completion landed though its answer was lost: right size, and our nonce. */
    private Optional<String> landed(Map<String, String> meta, long length) {
        HeadObjectResponse h;
        try {
            h = s3.headObject(r -> r.bucket(bucket).key(key));
        } catch (SdkException notThere) {
            return Optional.empty();
        }
        String nonce = meta.get(S3ObjectStore.NONCE_META);
        boolean ours = nonce == null || nonce.equals(h.metadata().get(S3ObjectStore.NONCE_META));
        return h.contentLength() == length && ours ? Optional.ofNullable(h.eTag()) : Optional.empty();
    }

    private void abort(String id) {
        try {
            s3.abortMultipartUpload(r -> r.bucket(bucket).key(key).uploadId(id));
        } catch (SdkException e) {
            // the upload stays incomplete and invisible; a bucket lifecycle rule can remove it
        }
    }

    /** The first {@code size} bytes of {@code in}. */
    static InputStream slice(InputStream in, long size) {
        return new FilterInputStream(in) {
            private long left = size;

            @Override
            public int read() throws IOException {
                if (left <= 0) {
                    return -1;
                }
                int b = super.read();
                left -= b < 0 ? 0 : 1;
                return b;
            }

            @Override
            public int read(byte[] b, int off, int len) throws IOException {
                if (left <= 0) {
                    return -1;
                }
                int n = super.read(b, off, (int) Math.min(len, left));
                left -= Math.max(n, 0);
                return n;
            }
        };
    }
}
