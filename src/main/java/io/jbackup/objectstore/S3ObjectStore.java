package io.jbackup.objectstore;

import software.amazon.awssdk.awscore.exception.AwsServiceException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.AwsCredentialsProvider;
import software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.core.ResponseInputStream;
import software.amazon.awssdk.core.ResponseBytes;
import software.amazon.awssdk.core.checksums.RequestChecksumCalculation;
import software.amazon.awssdk.core.checksums.ResponseChecksumValidation;
import software.amazon.awssdk.core.exception.SdkException;
import software.amazon.awssdk.core.sync.RequestBody;
import software.amazon.awssdk.http.urlconnection.UrlConnectionHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.regions.providers.DefaultAwsRegionProviderChain;
import software.amazon.awssdk.services.s3.S3Client;
import software.amazon.awssdk.services.s3.S3ClientBuilder;
import software.amazon.awssdk.services.s3.model.GetObjectResponse;
import software.amazon.awssdk.services.s3.model.HeadObjectResponse;
import software.amazon.awssdk.services.s3.model.ListObjectsV2Response;
import software.amazon.awssdk.services.s3.model.S3Object;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.URI;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;

/**
 * The object-store port on an S3 bucket under a key prefix, through the AWS SDK for Java v2 with its URL-connection
 * HTTP client (blocking, as the port is; it adds no second netty or Apache HttpClient to the class path).
 *
 * <ul>
 *   <li>A put is one PUT, or a multipart upload above {@link S3Settings#multipartThreshold()}: either way the object
 *       appears whole when the PUT or the completion succeeds.</li>
 *   <li>Conditional writes send {@code If-None-Match: *} (create) or {@code If-Match: ETAG} (replace), with a random
 *       nonce in the user metadata {@value #NONCE_META}. The SDK retries on its own, so a 412 may answer a retry
 *       whose first attempt landed: after a 412 the store reads the object's nonce back and reports a win when it is
 *       its own.</li>
 *   <li>A ranged read checks that it got as many bytes as the response announced (a reset connection can end a body
 *       early with no error) and reads the rest again, up to {@link S3Settings#readAttempts()} times.</li>
 *   <li>Requests are retried on 5xx, throttling, reset connections and stalled answers ({@link S3Retries}); an
 *       attempt that takes longer than {@link S3Transfer#attemptTimeout()} is abandoned and retried.</li>
 *   <li>Bodies of PUTs and parts go through the {@link UploadLimiter} when there is an upload limit, and every
 *       object is written in {@link S3Transfer#storageClass()}.</li>
 *   <li>Errors become the port's typed exceptions ({@link S3Errors}); what fails after the retries is a
 *       {@link TransientStoreException}.</li>
 * </ul>
 */
public final class S3ObjectStore implements ObjectStore {
    private static final Logger LOG = LoggerFactory.getLogger(S3ObjectStore.class);
    static final String NONCE_META = "jbackup-nonce";
    private static final SecureRandom RANDOM = new SecureRandom();

    private final S3Client s3;
    private final S3Settings settings;
    private final String base;
    private final S3Retries retries;
    private final UploadLimiter limiter;
    private final ExecutorService uploads;
    private final S3RequestCounter requests;

    /** A store on {@code s3}, which it closes (tests wrap the client to inject faults). */
    S3ObjectStore(S3Client s3, S3Settings settings) {
        this(s3, settings, new S3RequestCounter());
    }

    /** A store on {@code s3}, whose requests {@code requests} counts (registered on the client). */
    private S3ObjectStore(S3Client s3, S3Settings settings, S3RequestCounter requests) {
        this.requests = requests;
        this.s3 = s3;
        this.settings = settings;
        this.base = settings.prefix().isEmpty() ? "" : settings.prefix() + "/";
        S3Transfer t = settings.transfer();
        this.retries = new S3Retries(t);
        this.limiter = t.uploadLimit() > 0 ? new UploadLimiter(t.uploadLimit()) : null;
        AtomicInteger threads = new AtomicInteger();
        this.uploads = Executors.newFixedThreadPool(t.uploadConcurrency(), r -> {
            Thread th = new Thread(r, "s3-upload-" + threads.incrementAndGet());
            th.setDaemon(true);
            return th;
        });
    }

    /**
     * Connects and checks that the bucket exists and the credentials are accepted.
     *
     * @throws StoreNotFoundException      when the bucket does not exist
     * @throws StoreAccessDeniedException  when the credentials are wrong or lack permission
     */
    public static S3ObjectStore open(S3Settings settings) throws IOException {
        S3RequestCounter requests = new S3RequestCounter();
        S3Client client = client(settings, requests);
        try {
            client.headBucket(b -> b.bucket(settings.bucket()));
        } catch (SdkException e) {
            ObjectStoreException mapped = S3Errors.map(e, settings.describe(), endpointText(settings), "opening", null);
            if (S3Errors.status(e) == 404) {
                mapped = notS3(client, settings).orElse(mapped);
            }
            if (S3Errors.status(e) == 0 && !S3Errors.network(e) && !credentialsFound(client)) {
                // the SDK's answer lists every provider of its chain: the gist, with the chain at -vv
                LOG.debug("no S3 credentials for {}", settings.describe(), e);
                mapped = new StoreAccessDeniedException("no S3 credentials found for " + settings.describe()
                    + ": set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a profile in "
                    + "~/.aws/credentials, or run on a host with an instance role (-vv shows where the AWS SDK "
                    + "looked)", null);
            }
            client.close();
            throw mapped;
        }
        return new S3ObjectStore(client, settings, requests);
    }

    /**
     * After a HEAD of the bucket answered 404: whether the endpoint is not an S3 service at all (a web server, the
     * wrong port). A HEAD answer has no body, so the SDK reports any 404 as "no such bucket"; a listing's 404 from S3
     * carries the error code {@code NoSuchBucket}, another server's does not.
     */
    private static Optional<ObjectStoreException> notS3(S3Client client, S3Settings settings) {
        try {
            client.listObjectsV2(b -> b.bucket(settings.bucket()).maxKeys(1));
            return Optional.empty();
        } catch (SdkException e) {
            if (S3Errors.status(e) != 404 || e instanceof AwsServiceException a && S3Errors.code(a) != null) {
                return Optional.empty();
            }
            return Optional.of(new ObjectStoreException("the endpoint " + endpointText(settings) + " answered HTTP "
                + "404 for bucket " + settings.bucket() + " without an S3 error code: it does not look like an S3 "
                + "service; check the endpoint (--s3-endpoint, AWS_ENDPOINT_URL) and the bucket name", e)
                .causeForLogOnly());
        }
    }

    /** Whether {@code client}'s credentials provider finds credentials (a failed request may be for lack of them). */
    private static boolean credentialsFound(S3Client client) {
        try {
            return client.serviceClientConfiguration().credentialsProvider().resolveIdentity().join() != null;
        } catch (RuntimeException e) {
            return false;
        }
    }

    /** The endpoint for messages: the one {@link #endpoint} gives, or "AWS S3". */
    static String endpointText(S3Settings settings) {
        URI e = endpoint(settings);
        return e == null ? "AWS S3" : e.toString();
    }

    /** The endpoint from the settings, else from the environment the SDK reads, or null (AWS). */
    static URI endpoint(S3Settings settings) {
        if (settings.endpoint() != null) {
            return settings.endpoint();
        }
        for (String var : List.of("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")) {
            String v = System.getenv(var);
            if (v != null && !v.isBlank()) {
                return URI.create(v.trim());
            }
        }
        return null;
    }

    /** A client as {@code settings} say. */
    static S3Client client(S3Settings settings) throws ObjectStoreException {
        return client(settings, new S3RequestCounter());
    }

    /** A client as {@code settings} say, whose HTTP requests {@code requests} counts. */
    static S3Client client(S3Settings settings, S3RequestCounter requests) throws ObjectStoreException {
        URI endpoint = endpoint(settings);
        S3ClientBuilder b = S3Client.builder()
            .httpClientBuilder(UrlConnectionHttpClient.builder())
            // S3-compatible servers do not all know the SDK's default CRC trailers; integrity is checked above us
            .requestChecksumCalculation(RequestChecksumCalculation.WHEN_REQUIRED)
            .responseChecksumValidation(ResponseChecksumValidation.WHEN_REQUIRED)
            .forcePathStyle(settings.pathStyle() != null ? settings.pathStyle() : endpoint != null)
            .region(region(settings, endpoint))
            .credentialsProvider(credentials(settings))
            .overrideConfiguration(o -> o.retryStrategy(S3Retries.strategy(settings.transfer()))
                .apiCallAttemptTimeout(settings.transfer().attemptTimeout())
                .addExecutionInterceptor(requests));
        if (endpoint != null) {
            b.endpointOverride(endpoint);
        }
        return b.build();
    }

    private static Region region(S3Settings settings, URI endpoint) throws ObjectStoreException {
        if (settings.region() != null) {
            return Region.of(settings.region());
        }
        try {
            return new DefaultAwsRegionProviderChain().getRegion();
        } catch (SdkException e) {
            if (endpoint != null) {
                return Region.US_EAST_1;
            }
            throw new ObjectStoreException("no AWS region for " + settings.describe()
                + ": set AWS_REGION, a region in the profile, or --s3-region", e);
        }
    }

    private static AwsCredentialsProvider credentials(S3Settings settings) {
        return settings.accessKey() != null
            ? StaticCredentialsProvider.create(AwsBasicCredentials.create(settings.accessKey(), settings.secretKey()))
            : DefaultCredentialsProvider.builder().build();
    }

    private String full(String key) {
        return base + ObjectKeys.check(key);
    }

    @Override
    public void put(String key, ObjectSource data) throws IOException {
        write(key, data, null, null, null);
    }

    @Override
    public Optional<ObjectVersion> create(String key, ObjectSource data) throws IOException {
        return create(key, data, newNonce());
    }

    /** {@link #create(String, ObjectSource)} with a given nonce (tests replay a retried attempt with it). */
    Optional<ObjectVersion> create(String key, ObjectSource data, String nonce) throws IOException {
        try {
            return Optional.of(new ObjectVersion(write(key, data, nonce, "*", null)));
        } catch (PreconditionFailedException | TransientStoreException e) {
            return settle(key, nonce, null, e);
        }
    }

    @Override
    public Optional<ObjectVersion> replace(String key, ObjectVersion expected, ObjectSource data) throws IOException {
        return replace(key, expected, data, newNonce());
    }

    /** {@link #replace(String, ObjectVersion, ObjectSource)} with a given nonce. */
    Optional<ObjectVersion> replace(String key, ObjectVersion expected, ObjectSource data, String nonce)
            throws IOException {
        try {
            return Optional.of(new ObjectVersion(write(key, data, nonce, null, expected.tag())));
        } catch (ObjectNotFoundException e) {
            return Optional.empty();
        } catch (PreconditionFailedException | TransientStoreException e) {
            return settle(key, nonce, expected, e);
        }
    }

    /**
     * Decides a conditional write that got a 412, or no answer, from the object as it is now:
     * <ul>
     *   <li>it carries our nonce: we won (the SDK retried a request whose first attempt had landed, and the retry
     *       got 412 for our own object);</li>
     *   <li>the condition no longer holds (a create finds an object, a replace finds another version or none): we
     *       lost, whatever became of our request;</li>
     *   <li>else the condition still holds and our write did not land: {@code failure} stands. (The URL-connection
     *       client reports a 412 that the server sent before reading the body as a broken write, "Error writing
     *       request body to server", so a 412 may come here as a transient failure.)</li>
     * </ul>
     */
    private Optional<ObjectVersion> settle(String key, String nonce, ObjectVersion expected,
            ObjectStoreException failure) throws IOException {
        Optional<HeadObjectResponse> h = head(key);
        if (h.isPresent() && nonce.equals(h.get().metadata().get(NONCE_META))) {
            return Optional.of(new ObjectVersion(h.get().eTag()));
        }
        boolean conditionHolds = expected == null ? h.isEmpty()
            : h.isPresent() && expected.tag().equals(h.get().eTag());
        if (conditionHolds && failure instanceof TransientStoreException) {
            throw failure;
        }
        return Optional.empty();
    }

    /** One PUT, or a multipart upload; with {@code ifNoneMatch}/{@code ifMatch} when not null. Returns the ETag. */
    private String write(String key, ObjectSource data, String nonce, String ifNoneMatch, String ifMatch)
            throws IOException {
        String k = full(key);
        long length = data.length();
        Map<String, String> meta = nonce == null ? Map.of() : Map.of(NONCE_META, nonce);
        try {
            if (length > settings.multipartThreshold()) {
                return new S3Multipart(s3, settings.bucket(), k, settings.partSize(), settings.transfer(), limiter,
                    uploads, retries).upload(data, meta, ifNoneMatch, ifMatch);
            }
            S3Transfer t = settings.transfer();
            return s3.putObject(r -> r.bucket(settings.bucket()).key(k).metadata(meta).ifNoneMatch(ifNoneMatch)
                    .ifMatch(ifMatch).contentLength(length).storageClass(t.storageClass())
                    .overrideConfiguration(c -> c.apiCallAttemptTimeout(t.uploadTimeout(length))),
                RequestBody.fromContentProvider(() -> {
                    try {
                        InputStream in = SourceFailure.guard(data.open());
                        return limiter == null ? in : limiter.wrap(in);
                    } catch (IOException e) {
                        throw new UncheckedIOException(e);
                    }
                }, length, "application/octet-stream")).eTag();
        } catch (SdkException | SourceFailure e) {
            IOException source = SourceFailure.unwrap(e);
            if (source != null) {
                throw source;
            }
            throw S3Errors.map((SdkException) e, describe(), endpointText(settings), "writing", key);
        } catch (UncheckedIOException e) {
            throw e.getCause();
        }
    }

    @Override
    public Optional<VersionedObject> getVersioned(String key) throws IOException {
        return unlessMissing(key, () -> {
            ResponseBytes<GetObjectResponse> b = s3.getObjectAsBytes(r -> r.bucket(settings.bucket()).key(full(key)));
            return new VersionedObject(b.asByteArray(), new ObjectVersion(b.response().eTag()));
        });
    }

    /** The result of {@code read}, or empty when S3 says the object does not exist. */
    private <T> Optional<T> unlessMissing(String key, Supplier<T> read) throws IOException {
        try {
            return Optional.of(read.get());
        } catch (SdkException e) {
            ObjectStoreException mapped = S3Errors.map(e, describe(), endpointText(settings), "reading", key);
            if (mapped instanceof ObjectNotFoundException) {
                return Optional.empty();
            }
            throw mapped;
        }
    }

    @Override
    public byte[] get(String key, long offset, int length) throws IOException {
        if (offset < 0 || length < 0) {
            throw new IllegalArgumentException("offset " + offset + ", length " + length);
        }
        if (length == 0) {
            stat(key).orElseThrow(() -> new ObjectNotFoundException(describe(), key));
            return new byte[0];
        }
        String k = full(key);
        long end = offset + length - 1;
        byte[] out = null; // read straight into the result (no growing buffer, no copy at the end), sized by the
        int have = 0;      // first answer: length may be a bound (Integer.MAX_VALUE: to the end)
        for (int attempt = 1; ; attempt++) {
            long from = offset + have;
            long announced;
            try (ResponseInputStream<GetObjectResponse> in = s3.getObject(r -> r.bucket(settings.bucket()).key(k)
                    .range("bytes=" + from + "-" + end))) {
                announced = in.response().contentLength();
                if (from > 0 && in.response().contentRange() == null) {
                    // a 200 with the whole object: its first bytes are not the ones asked for
                    throw new ObjectStoreException(describe() + " ignored the byte range of a read of " + key
                        + " (at " + from + ", " + (end + 1 - from) + " bytes): it is not S3-compatible enough");
                }
                if (out == null) {
                    out = new byte[(int) Math.max(0, Math.min(length, announced))];
                }
                have += readUpTo(in, out, have, (int) Math.max(0, Math.min(announced, out.length - have)));
            } catch (SdkException e) {
                if (S3Errors.status(e) == S3Errors.RANGE_NOT_SATISFIABLE) {
                    return out == null ? new byte[0] : Arrays.copyOf(out, have);
                }
                throw S3Errors.map(e, describe(), endpointText(settings), "reading", key);
            }
            long got = offset + have - from;
            if (got >= announced || have == out.length) {
                return have == out.length ? out : Arrays.copyOf(out, have);
            }
            if (attempt >= settings.readAttempts()) {
                throw new TransientStoreException("reading " + key + " in " + describe() + " at " + from + ": got "
                    + got + " of " + announced + " bytes, " + attempt + " times", null);
            }
            retries.pause(attempt);
        }
    }

    /**
     * Reads at most {@code limit} bytes into {@code dst} at {@code at}; returns how many. A stream that ends early,
     * or breaks, just gives fewer.
     */
    private static int readUpTo(InputStream in, byte[] dst, int at, int limit) {
        int done = 0;
        try {
            int n;
            while (done < limit && (n = in.read(dst, at + done, limit - done)) > 0) {
                done += n;
            }
        } catch (IOException | SdkException e) {
            // a body cut short: the caller sees fewer bytes than announced and reads the rest again
        }
        return done;
    }

    @Override
    public Optional<ObjectInfo> stat(String key) throws IOException {
        return head(key).map(h -> new ObjectInfo(key, h.contentLength(), h.lastModified()));
    }

    private Optional<HeadObjectResponse> head(String key) throws IOException {
        return unlessMissing(key, () -> s3.headObject(r -> r.bucket(settings.bucket()).key(full(key))));
    }

    @Override
    public ListPage list(String prefix, String startAfter) throws IOException {
        ObjectKeys.checkPrefix(prefix);
        try {
            ListObjectsV2Response r = retries.again(() -> s3.listObjectsV2(b -> b.bucket(settings.bucket())
                .prefix(base + prefix).startAfter(startAfter == null ? null : base + startAfter)
                .maxKeys(settings.pageSize())));
            List<ObjectInfo> out = new ArrayList<>(r.contents().size());
            for (S3Object o : r.contents()) {
                out.add(new ObjectInfo(o.key().substring(base.length()), o.size(), o.lastModified()));
            }
            return new ListPage(out, Boolean.TRUE.equals(r.isTruncated()));
        } catch (SdkException e) {
            throw S3Errors.map(e, describe(), endpointText(settings), "listing " + prefix + "* in", null);
        }
    }

    @Override
    public void delete(String key) throws IOException {
        try {
            s3.deleteObject(r -> r.bucket(settings.bucket()).key(full(key)));
        } catch (SdkException e) {
            ObjectStoreException mapped = S3Errors.map(e, describe(), endpointText(settings), "deleting", key);
            if (!(mapped instanceof ObjectNotFoundException)) {
                throw mapped;
            }
        }
    }

    @Override
    public int pageSize() {
        return settings.pageSize();
    }

    @Override
    public String describe() {
        return settings.describe();
    }

    /** The HTTP requests this store has sent, retries included. */
    S3RequestCounter requests() {
        return requests;
    }

    @Override
    public void close() {
        if (requests.total() > 0) {
            LOG.info("S3 requests: {} to {}", requests.summary(), settings.describe());
        }
        uploads.shutdownNow();
        s3.close();
    }

    private static String newNonce() {
        byte[] b = new byte[16];
        RANDOM.nextBytes(b);
        return HexFormat.of().formatHex(b);
    }
}
