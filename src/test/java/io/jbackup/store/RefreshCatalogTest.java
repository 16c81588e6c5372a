package io.jbackup.store;

import io.jbackup.testutil.HttpFaultProxy;
import io.jbackup.testutil.HttpFaultProxy.Kind;
import io.jbackup.testutil.S3Proxy;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link Repository#refreshCatalog}, as a long-running {@code serve} of an S3 repository calls it before it lists or
 * opens exports: it asks the store again only when the last attempt is older than the age given, also when that
 * attempt failed, so a reader does not sit through the store's retries on every call while the store is down.
 */
class RefreshCatalogTest {
    @TempDir
    Path dir;

    @Test
    void aFailedRefreshIsNotRetriedOnEveryCall() throws Exception {
        try (S3Proxy server = S3Proxy.start(Files.createDirectories(dir.resolve("s3"))).withDefaultCredentials();
             HttpFaultProxy proxy = HttpFaultProxy.start(server.endpoint())) {
            server.createBucket("refresh");
            RepositoryLocation loc = RepositoryLocations.parse("s3://refresh/r", proxy.endpoint().toString(),
                "us-east-1", null, dir.resolve("cache"), System.getenv(), new S3Options(0, null, null, null));
            Repository.init(loc, new RepositoryOptions(64 << 10, Encryption.NONE, 1, 1 << 20), null).close();
            try (Repository r = Repository.open(loc, OpenOptions.defaults())) {
                proxy.reset();
                r.refreshCatalog(Duration.ZERO);
                int ok = proxy.count(Kind.LIST) + proxy.count(Kind.GET);
                assertTrue(ok > 0, "a refresh asks the store");

                // the last success is older than the age, the failed attempt after it is not
                Thread.sleep(6_000);
                proxy.inject(Kind.LIST, ".*", HttpFaultProxy.internalError(), 1000);
                proxy.inject(Kind.GET, ".*", HttpFaultProxy.internalError(), 1000);
                assertThrows(java.io.IOException.class, () -> r.refreshCatalog(Duration.ZERO));
                int failed = proxy.injected();
                assertTrue(failed > 0, "the store failed");
                r.refreshCatalog(Duration.ofSeconds(5)); // within the age of the failed attempt: not again
                assertEquals(failed, proxy.injected(), "no request after a failed attempt within the age");
            }
        }
    }
}
