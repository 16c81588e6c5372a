package io.jbackup.objectstore;

import software.amazon.awssdk.core.ResponseInputStream;
import software.amazon.awssdk.core.sync.RequestBody;
import software.amazon.awssdk.services.s3.S3Client;
import software.amazon.awssdk.services.s3.model.GetObjectRequest;
import software.amazon.awssdk.services.s3.model.GetObjectResponse;
import software.amazon.awssdk.services.s3.model.HeadObjectRequest;
import software.amazon.awssdk.services.s3.model.HeadObjectResponse;
import software.amazon.awssdk.services.s3.model.PutObjectRequest;
import software.amazon.awssdk.services.s3.model.PutObjectResponse;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * A real S3 client whose first {@code shortReads} GET bodies end halfway, with no error: what AWS SDK v2's
 * URL-connection client returned when a connection was reset in the middle of a body.
 */
final class ShortReadingS3Client implements S3Client {
    private final S3Client real;
    private final AtomicInteger shortReads;
    final AtomicInteger gets = new AtomicInteger();

    ShortReadingS3Client(S3Client real, int shortReads) {
        this.real = real;
        this.shortReads = new AtomicInteger(shortReads);
    }

    @Override
    public ResponseInputStream<GetObjectResponse> getObject(GetObjectRequest request) {
        gets.incrementAndGet();
        ResponseInputStream<GetObjectResponse> in = real.getObject(request);
        if (shortReads.getAndDecrement() <= 0) {
            return in;
        }
        long cut = in.response().contentLength() / 2;
        return new ResponseInputStream<>(in.response(), S3Multipart.slice(in, cut));
    }

    @Override
    public PutObjectResponse putObject(PutObjectRequest request, RequestBody body) {
        return real.putObject(request, body);
    }

    @Override
    public HeadObjectResponse headObject(HeadObjectRequest request) {
        return real.headObject(request);
    }

    @Override
    public String serviceName() {
        return real.serviceName();
    }

    @Override
    public void close() {
        real.close();
    }
}
