package io.jbackup.nbd.server;

import io.netty.util.concurrent.DefaultThreadFactory;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * The default executor for blocking file I/O of the exports in this package: daemon threads, at least 4 and twice
 * the processor count, idle threads exit after 30 s.
 */
public final class IoPool {
    private static final ExecutorService SHARED;

    static {
        int n = Math.max(4, 2 * Runtime.getRuntime().availableProcessors());
        ThreadPoolExecutor e = new ThreadPoolExecutor(n, n, 30, TimeUnit.SECONDS, new LinkedBlockingQueue<>(),
            new DefaultThreadFactory("nbd-export-io", true));
        e.allowCoreThreadTimeOut(true);
        SHARED = e;
    }

    private IoPool() {
    }

    /** The shared pool. */
    public static ExecutorService shared() {
        return SHARED;
    }
}
