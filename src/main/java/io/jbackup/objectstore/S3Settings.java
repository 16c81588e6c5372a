package io.jbackup.objectstore;

import java.net.URI;
import java.util.Objects;

/**
 * Where and how {@link S3ObjectStore} reaches its bucket. Null fields fall back to the AWS SDK's standard sources:
 * the endpoint to {@code AWS_ENDPOINT_URL_S3}, then {@code AWS_ENDPOINT_URL}, then AWS itself; the region to
 * {@code AWS_REGION} and the profile ({@code us-east-1} when none is set and the endpoint is not AWS); the credentials
 * to the SDK's default chain (environment, system properties, profiles, container and instance roles).
 *
 * @param bucket             the bucket, which must exist
 * @param prefix             the key prefix of the repository inside the bucket ("" or {@code a/b}, no slashes at the
 *                           ends)
 * @param endpoint           a custom endpoint ({@code --s3-endpoint}), or null
 * @param region             {@code --s3-region}, or null
 * @param pathStyle          {@code --s3-path-style}; null: path-style for a custom endpoint, virtual-hosted for AWS
 * @param accessKey          with {@code secretKey}: static credentials instead of the default chain, or null
 * @param secretKey          see {@code accessKey}
 * @param multipartThreshold objects larger than this many bytes are uploaded in parts
 * @param partSize           the size of each part but the last (S3 wants at least 5 MiB)
 * @param pageSize           the most keys a listing asks for at once (S3 gives at most 1000)
 * @param readAttempts       how often a ranged read that came back short is tried before it fails
 * @param transfer           retries, timeouts, upload parallelism and bandwidth, storage class
 */
public record S3Settings(String bucket, String prefix, URI endpoint, String region, Boolean pathStyle,
        String accessKey, String secretKey, long multipartThreshold, long partSize, int pageSize, int readAttempts,
        S3Transfer transfer) {

    /** The smallest part S3 accepts (but for the last one). */
    public static final long MIN_PART_SIZE = 5L << 20;

    public S3Settings {
        Objects.requireNonNull(bucket, "bucket");
        transfer = transfer == null ? S3Transfer.defaults() : transfer;
        prefix = prefix == null ? "" : prefix;
        if (prefix.startsWith("/") || prefix.endsWith("/")) {
            throw new IllegalArgumentException("S3 prefix " + prefix + " starts or ends with '/'");
        }
        if (!prefix.isEmpty()) {
            ObjectKeys.check(prefix);
        }
        if ((accessKey == null) != (secretKey == null)) {
            throw new IllegalArgumentException("an access key needs a secret key, and the other way round");
        }
        if (partSize < MIN_PART_SIZE || multipartThreshold < partSize) {
            throw new IllegalArgumentException("part size " + partSize + " must be >= " + MIN_PART_SIZE
                + " and <= the multipart threshold " + multipartThreshold);
        }
        if (pageSize < 1 || pageSize > 1000 || readAttempts < 1) {
            throw new IllegalArgumentException("page size " + pageSize + " (1..1000), read attempts " + readAttempts);
        }
    }

    /** The defaults for {@code bucket/prefix}: parts of 16 MiB above 64 MiB, pages of 1000 keys, 5 read attempts. */
    public static S3Settings of(String bucket, String prefix) {
        return new S3Settings(bucket, prefix, null, null, null, null, null, 64L << 20, 16L << 20, 1000, 5,
            S3Transfer.defaults());
    }

    public S3Settings withEndpoint(URI e) {
        return new S3Settings(bucket, prefix, e, region, pathStyle, accessKey, secretKey, multipartThreshold, partSize,
            pageSize, readAttempts, transfer);
    }

    public S3Settings withRegion(String r) {
        return new S3Settings(bucket, prefix, endpoint, r, pathStyle, accessKey, secretKey, multipartThreshold,
            partSize, pageSize, readAttempts, transfer);
    }

    public S3Settings withPathStyle(Boolean p) {
        return new S3Settings(bucket, prefix, endpoint, region, p, accessKey, secretKey, multipartThreshold, partSize,
            pageSize, readAttempts, transfer);
    }

    public S3Settings withCredentials(String access, String secret) {
        return new S3Settings(bucket, prefix, endpoint, region, pathStyle, access, secret, multipartThreshold,
            partSize, pageSize, readAttempts, transfer);
    }

    public S3Settings withMultipart(long threshold, long part) {
        return new S3Settings(bucket, prefix, endpoint, region, pathStyle, accessKey, secretKey, threshold, part,
            pageSize, readAttempts, transfer);
    }

    public S3Settings withPageSize(int p) {
        return new S3Settings(bucket, prefix, endpoint, region, pathStyle, accessKey, secretKey, multipartThreshold,
            partSize, p, readAttempts, transfer);
    }

    public S3Settings withReadAttempts(int n) {
        return new S3Settings(bucket, prefix, endpoint, region, pathStyle, accessKey, secretKey, multipartThreshold,
            partSize, pageSize, n, transfer);
    }

    public S3Settings withTransfer(S3Transfer t) {
        return new S3Settings(bucket, prefix, endpoint, region, pathStyle, accessKey, secretKey, multipartThreshold,
            partSize, pageSize, readAttempts, t);
    }

    /** {@code s3://bucket/prefix}. */
    public String describe() {
        return "s3://" + bucket + (prefix.isEmpty() ? "" : "/" + prefix);
    }
}
