package io.jbackup.nbd.server;

import io.netty.buffer.ByteBufAllocator;
import io.netty.channel.ChannelHandler;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** What every connection of one {@link NbdServer} shares. */
final class ServerContext {
    private static final Logger log = LoggerFactory.getLogger(ServerContext.class);

    final ServerConfig config;
    final ExportProvider provider;
    final ExecutorService blocking;
    /** Creates the server-side TLS handler, or null if TLS is off. */
    final Function<ByteBufAllocator, ChannelHandler> tlsHandlerFactory;
    private volatile boolean shuttingDown;

    ServerContext(ServerConfig config, ExportProvider provider, ExecutorService blocking,
                  Function<ByteBufAllocator, ChannelHandler> tlsHandlerFactory) {
        this.config = config;
        this.provider = provider;
        this.blocking = blocking;
        this.tlsHandlerFactory = tlsHandlerFactory;
    }

    boolean shuttingDown() {
        return shuttingDown;
    }

    void beginShutdown() {
        shuttingDown = true;
    }

    /** Closes an export on the blocking executor (close may do I/O), logging failures. */
    void closeExport(NbdExport export) {
        if (export == null) {
            return;
        }
        Runnable task = () -> {
            try {
                export.close();
            } catch (Exception e) {
                log.warn("closing export '{}' failed: {}", export.name(), e.toString(), e);
            }
        };
        try {
            CompletableFuture.runAsync(task, blocking);
        } catch (RuntimeException rejected) {
            task.run();
        }
    }

    /** Validates what an export advertises; the message names the export and the bad value. */
    static void checkExport(NbdExport e) {
        String n = "export '" + e.name() + "'";
        if (e.size() < 0) {
            throw new IllegalStateException(n + ": size " + e.size() + " (expected: >= 0)");
        }
        int min = e.minBlockSize();
        int pref = e.preferredBlockSize();
        int max = e.maxPayload();
        if (min < 1 || min > 65536 || Integer.bitCount(min) != 1) {
            throw new IllegalStateException(n + ": minimum block size " + min + " (expected: power of two <= 65536)");
        }
        if (pref < Math.max(512, min) || Integer.bitCount(pref) != 1) {
            throw new IllegalStateException(n + ": preferred block size " + pref
                + " (expected: power of two >= max(512, minimum " + min + "))");
        }
        if (max < pref) {
            throw new IllegalStateException(n + ": maximum payload " + max + " (expected: >= preferred " + pref + ")");
        }
    }
}
