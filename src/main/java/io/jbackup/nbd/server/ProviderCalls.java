package io.jbackup.nbd.server;

import io.netty.channel.ChannelHandlerContext;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.function.BiConsumer;
import java.util.function.BooleanSupplier;

/**
 * The {@link ExportProvider} calls of one connection in negotiation. Each runs on the server's blocking executor
 * with reading from the socket suspended; its result comes back on the event loop, unless the connection went away
 * or negotiation finished meanwhile: then it is dropped (and an opened export closed). The export opened last stays
 * open and cached for the next option that names it, until another export is opened, {@link #dropCached()} closes
 * it, or {@link #handOver} passes it on to transmission. Used on the event loop only.
 */
final class ProviderCalls {
    private final ServerContext server;
    private final ChannelHandlerContext ctx;
    private final BooleanSupplier finished;
    private NbdExport cached;
    private String cachedName;

    ProviderCalls(ServerContext server, ChannelHandlerContext ctx, BooleanSupplier finished) {
        this.server = server;
        this.ctx = ctx;
        this.finished = finished;
    }

    /**
     * Calls {@code then} on the event loop with the export named {@code name} (null if there is none) or the
     * failure to open it; an export that fails {@link ServerContext#checkExport} is closed and is that failure.
     */
    void open(String name, BiConsumer<NbdExport, Throwable> then) {
        if (cached != null && name.equals(cachedName)) {
            then.accept(cached, null);
            return;
        }
        dropCached();
        async(() -> {
            NbdExport e = server.provider.open(name);
            if (e != null) {
                try {
                    ServerContext.checkExport(e);
                } catch (IllegalStateException bad) {
                    server.closeExport(e);
                    throw bad;
                }
            }
            return e;
        }, (export, failure) -> {
            if (failure == null && export != null) {
                cached = export;
                cachedName = name;
            }
            then.accept(export, failure);
        });
    }

    /** {@code export} now belongs to the transmission: it is no longer cached, nor closed by {@link #dropCached()}. */
    void handOver(NbdExport export) {
        if (export == cached) {
            cached = null;
            cachedName = null;
        }
    }

    /** Closes the cached export, if any. */
    void dropCached() {
        if (cached != null) {
            server.closeExport(cached);
            cached = null;
            cachedName = null;
        }
    }

    /**
     * Runs {@code task} on the blocking executor with reading suspended, then {@code then} on the event loop
     * (skipped, and an export result closed, if the connection went away meanwhile).
     */
    <T> void async(Callable<T> task, BiConsumer<T, Throwable> then) {
        ctx.channel().config().setAutoRead(false);
        CompletableFuture<T> f;
        try {
            f = CompletableFuture.supplyAsync(() -> {
                try {
                    return task.call();
                } catch (Exception e) {
                    throw new CompletionException(e);
                }
            }, server.blocking);
        } catch (RuntimeException rejected) {
            f = CompletableFuture.failedFuture(rejected);
        }
        f.whenComplete((value, failure) -> {
            Throwable cause = failure instanceof CompletionException && failure.getCause() != null
                ? failure.getCause() : failure;
            Runnable r = () -> {
                if (finished.getAsBoolean() || !ctx.channel().isActive()) {
                    if (value instanceof NbdExport e) {
                        server.closeExport(e);
                    }
                    return;
                }
                ctx.channel().config().setAutoRead(true);
                then.accept(value, cause);
            };
            try {
                ctx.executor().execute(r);
            } catch (RuntimeException rejected) {
                if (value instanceof NbdExport e) {
                    server.closeExport(e);
                }
            }
        });
    }
}
