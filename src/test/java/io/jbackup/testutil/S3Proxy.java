package io.jbackup.testutil;

import io.jbackup.objectstore.S3Settings;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.core.exception.SdkException;
import software.amazon.awssdk.http.urlconnection.UrlConnectionHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.s3.S3Client;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/**
 * A real S3 server for tests: s3proxy (Maven Central {@code org.gaul:s3proxy}, jar-with-dependencies, copied to
 * {@code target/s3proxy/s3proxy.jar} by the build; never on the test class path) with its filesystem backend under
 * {@code DIR/data}, on a free port of 127.0.0.1, with AWS v2/v4 signatures and the credentials {@link #IDENTITY} /
 * {@link #CREDENTIAL}. {@link #start} returns once the server answers S3 requests; close to stop it.
 */
public final class S3Proxy implements AutoCloseable {
    public static final String IDENTITY = "testkey";
    public static final String CREDENTIAL = "testsecret";

    private final Proc.Background process;
    private final URI endpoint;
    private final S3Client client;
    private volatile boolean defaultCredentials;

    private S3Proxy(Proc.Background process, URI endpoint) {
        this.process = process;
        this.endpoint = endpoint;
        this.client = S3Client.builder().httpClientBuilder(UrlConnectionHttpClient.builder())
            .endpointOverride(endpoint).forcePathStyle(true).region(Region.US_EAST_1)
            .credentialsProvider(StaticCredentialsProvider.create(AwsBasicCredentials.create(IDENTITY, CREDENTIAL)))
            .build();
    }

    /** The jar the build copied ({@code mvn generate-test-resources} puts it there). */
    public static Path jar() {
        Path jar = Path.of(System.getProperty("basedir", "."), "target", "s3proxy", "s3proxy.jar");
        if (!Files.isRegularFile(jar)) {
            throw new AssertionError(jar + " is missing: run `mvn generate-test-resources` (maven-dependency-plugin "
                + "copies org.gaul:s3proxy there)");
        }
        return jar;
    }

    /** Starts s3proxy with its data and log under {@code dir}. */
    public static S3Proxy start(Path dir) {
        return start(dir, Proc.freePort());
    }

    /**
     * Starts s3proxy on {@code port} with its data and log under {@code dir}: with the port and directory of a server
     * that was {@linkplain #kill killed}, the same server again, holding what it held.
     */
    public static S3Proxy start(Path dir, int port) {
        URI endpoint = URI.create("http://127.0.0.1:" + port);
        try {
            Path data = Files.createDirectories(dir.resolve("data"));
            Path conf = dir.resolve("s3proxy.conf");
            Files.writeString(conf, String.join("\n",
                "s3proxy.authorization=aws-v2-or-v4",
                "s3proxy.endpoint=" + endpoint,
                "s3proxy.identity=" + IDENTITY,
                "s3proxy.credential=" + CREDENTIAL,
                "jclouds.provider=filesystem",
                "jclouds.filesystem.basedir=" + data, ""));
            String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
            Proc.Background bg = Proc.start(dir.resolve("s3proxy-" + System.nanoTime() + ".log"), java, "-Xmx256m", "-XX:TieredStopAtLevel=1",
                "-jar", jar().toString(), "--properties", conf.toString());
            S3Proxy proxy = new S3Proxy(bg.awaitPort(port), endpoint);
            proxy.awaitAnswer();
            return proxy;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Waits until the server answers a signed request (the port opens before the S3 handler is ready). */
    private void awaitAnswer() {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (true) {
            try {
                client.listBuckets();
                return;
            } catch (SdkException e) {
                if (!process.process().isAlive() || System.nanoTime() > deadline) {
                    close();
                    throw new AssertionError("s3proxy does not answer at " + endpoint + ": " + e + "\n"
                        + process.readLog(), e);
                }
                Proc.sleep(100);
            }
        }
    }

    /**
     * Makes {@link #IDENTITY} / {@link #CREDENTIAL} the AWS SDK's default credentials in this JVM (the system
     * properties {@code aws.accessKeyId} / {@code aws.secretAccessKey}), as the environment of a real host would,
     * for jbackup commands run in-process; {@link #clearDefaultCredentials} undoes it.
     */
    public static void setDefaultCredentials() {
        System.setProperty("aws.accessKeyId", IDENTITY);
        System.setProperty("aws.secretAccessKey", CREDENTIAL);
    }

    public static void clearDefaultCredentials() {
        System.clearProperty("aws.accessKeyId");
        System.clearProperty("aws.secretAccessKey");
    }

    /** Kills the server with SIGKILL (a crash: no request in flight is finished) and waits for it to be gone. */
    public void kill() {
        process.process().destroyForcibly();
        try {
            if (!process.process().waitFor(30, TimeUnit.SECONDS)) {
                throw new AssertionError("s3proxy did not die after SIGKILL");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted while killing s3proxy", e);
        }
    }

    public int port() {
        return endpoint.getPort();
    }

    public URI endpoint() {
        return endpoint;
    }

    /** A client of the test's own, with the right credentials. */
    public S3Client client() {
        return client;
    }

    /**
     * Makes this server's credentials those of the AWS default chain of this JVM (the {@code aws.accessKeyId} and
     * {@code aws.secretAccessKey} system properties, as the environment of a real host would), until {@link #close}.
     */
    public S3Proxy withDefaultCredentials() {
        setDefaultCredentials();
        defaultCredentials = true;
        return this;
    }

    /** Creates the bucket {@code name} and returns it. */
    public String createBucket(String name) {
        client.createBucket(b -> b.bucket(name));
        return name;
    }

    /** Settings that reach {@code bucket/prefix} on this server with the right credentials. */
    public S3Settings settings(String bucket, String prefix) {
        return S3Settings.of(bucket, prefix).withEndpoint(endpoint).withRegion("us-east-1")
            .withCredentials(IDENTITY, CREDENTIAL);
    }

    @Override
    public void close() {
        if (defaultCredentials) {
            clearDefaultCredentials();
        }
        client.close();
        process.close();
    }
}
