package io.jbackup.objectstore;

import software.amazon.awssdk.core.exception.SdkException;
import software.amazon.awssdk.core.sync.RequestBody;
import software.amazon.awssdk.services.s3.S3Client;
import software.amazon.awssdk.services.s3.model.CompletedPart;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * One multipart upload: parts of {@code partSize} bytes read one at a time from the source (memory: one part), then
 * the completion, which carries the conditions; the object appears only then. Any failure aborts the upload, so no
 * parts are left behind to be billed.
 */
final class S3Multipart {
    private final S3Client s3;
    private final String bucket;
    private final String key;
    private final long partSize;

    S3Multipart(S3Client s3, String bucket, String key, long partSize) {
        this.s3 = s3;
        this.bucket = bucket;
        this.key = key;
        this.partSize = partSize;
    }

    /** Uploads {@code data}; {@code ifNoneMatch}/{@code ifMatch} apply to the completion when not null. */
    String upload(ObjectSource data, Map<String, String> meta, String ifNoneMatch, String ifMatch)
            throws IOException {
        String id = s3.createMultipartUpload(r -> r.bucket(bucket).key(key).metadata(meta)).uploadId();
        boolean done = false;
        try {
            List<CompletedPart> parts = new ArrayList<>();
            long length = data.length();
            try (InputStream in = data.open()) {
                for (int n = 1; (long) (n - 1) * partSize < length; n++) {
                    byte[] part = in.readNBytes((int) Math.min(partSize, length - (n - 1) * partSize));
                    if (part.length == 0) {
                        throw new ObjectStoreException("the content of " + key + " ended at " + (n - 1) * partSize
                            + " bytes, before the " + length + " announced: it changed while it was stored");
                    }
                    int number = n;
                    String etag = s3.uploadPart(r -> r.bucket(bucket).key(key).uploadId(id).partNumber(number)
                        .contentLength((long) part.length), RequestBody.fromBytes(part)).eTag();
                    parts.add(CompletedPart.builder().partNumber(number).eTag(etag).build());
                }
            }
            String etag = s3.completeMultipartUpload(r -> r.bucket(bucket).key(key).uploadId(id)
                .ifNoneMatch(ifNoneMatch).ifMatch(ifMatch).multipartUpload(u -> u.parts(parts))).eTag();
            done = true;
            return etag;
        } finally {
            if (!done) {
                abort(id);
            }
        }
    }

    private void abort(String id) {
        try {
            s3.abortMultipartUpload(r -> r.bucket(bucket).key(key).uploadId(id));
        } catch (SdkException e) {
            // the upload stays incomplete and invisible; a bucket lifecycle rule can remove it
        }
    }
}
