package io.jbackup.engine;

import io.jbackup.error.UsageException;
import io.jbackup.nbd.server.ChunkCache;
import io.jbackup.nbd.server.NbdServer;
import io.jbackup.nbd.server.ServerConfig;
import io.jbackup.store.Repository;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/**
 * {@code jbackup serve} as an object: an {@link NbdServer} serving a repository's backups through
 * {@link BackupExports} with one shared {@link ChunkCache}. The command and the tests start it the same way.
 *
 * <pre>{@code
 * try (BackupServer s = BackupServer.start(repo, serverConfig, BackupServer.Options.readOnly(256 << 20, 8))) {
 *     ... s.server().socketPath() ...
 * }   // stops accepting, finishes requests in flight, closes overlays (kept or discarded), empties the cache
 * }</pre>
 * The repository is not closed.
 */
public final class BackupServer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(BackupServer.class);

    /**
     * What to serve and how.
     *
     * @param cacheBytes memory for decompressed chunks, shared by all exports (off-heap)
     * @param readAhead  chunks prefetched after sequential reads (0 .. 256)
     * @param writable   null for read-only exports, else the overlay policy
     */
    public record Options(long cacheBytes, int readAhead, BackupExports.Writable writable) {
        public Options {
            if (cacheBytes < 0) {
                throw new UsageException("cache size " + cacheBytes + " (expected: >= 0)");
            }
            if (readAhead < 0 || readAhead > 256) {
                throw new UsageException("read-ahead " + readAhead + " (expected: 0 .. 256)");
            }
        }

        public static Options readOnly(long cacheBytes, int readAhead) {
            return new Options(cacheBytes, readAhead, null);
        }

        /** Writable exports with overlays in {@code overlayDir}, kept or discarded at shutdown. */
        public static Options writable(long cacheBytes, int readAhead, Path overlayDir, boolean discardChanges) {
            return new Options(cacheBytes, readAhead, new BackupExports.Writable(overlayDir, discardChanges));
        }
    }

    private final BackupExports exports;
    private final NbdServer server;

    private BackupServer(BackupExports exports, NbdServer server) {
        this.exports = exports;
        this.server = server;
    }

    /** Starts serving; fails if an address is in use, TLS credentials cannot be loaded, or the cache does not fit. */
    public static BackupServer start(Repository repo, ServerConfig config, Options options) throws IOException {
        ChunkCache cache = new ChunkCache(options.cacheBytes());
        BackupExports exports = options.writable() == null
            ? new BackupExports(repo, cache, options.readAhead())
            : new BackupExports(repo, cache, options.readAhead(), options.writable());
        try {
            NbdServer server = NbdServer.start(config, exports);
            LOG.info("serving repository {} ({} exports{})", repo.location(), exports.list().size(),
                exports.writable() ? ", writable, overlays in " + exports.overlayDir() : ", read-only");
            return new BackupServer(exports, server);
        } catch (IOException | RuntimeException e) {
            exports.close();
            throw e;
        }
    }

    public NbdServer server() {
        return server;
    }

    public BackupExports exports() {
        return exports;
    }

    /** Overlays kept at {@link #close()} (call after closing). */
    public List<BackupExports.KeptOverlay> keptOverlays() {
        return exports.keptOverlays();
    }

    /**
     * Stops the server gracefully (requests in flight finish, bounded by the server's shutdown timeout), then
     * closes the overlays, readers and cache. Idempotent.
     */
    @Override
    public void close() {
        try {
            server.close();
        } finally {
            exports.close();
        }
    }
}
