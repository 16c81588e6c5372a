package io.jbackup.nbd.server;

import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;

/**
 * Serves one raw file read-only as the default export on a Unix socket until SIGTERM, for
 * {@code bench/server-bench.sh}: {@code BenchServer SOCKET FILE [ioThreads]}.
 */
public final class BenchServer {
    private BenchServer() {
    }

    public static void main(String[] args) throws Exception {
        Path sock = Path.of(args[0]);
        Path file = Path.of(args[1]);
        ServerConfig.Builder cfg = ServerConfig.builder().unixSocket(sock);
        if (args.length > 2) {
            cfg.ioThreads(Integer.parseInt(args[2]));
        }
        RawFileExport export = RawFileExport.open(file, "", file.getFileName().toString());
        SimpleExportProvider p = new SimpleExportProvider().addShared(export);
        NbdServer server = NbdServer.start(cfg.build(), p);
        CountDownLatch done = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.close();
            done.countDown();
        }));
        done.await();
    }
}
