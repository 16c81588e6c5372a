package io.jbackup.cli;

import io.jbackup.engine.BackupExports;
import io.jbackup.nbd.server.ChunkCache;
import io.jbackup.nbd.server.NbdServer;
import io.jbackup.nbd.server.ServerConfig;
import io.jbackup.store.LockMode;
import io.jbackup.store.Repository;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;

/** {@code jbackup serve}: serve every backup over NBD (read-only) for instant recovery. */
@Command(name = "serve", mixinStandardHelpOptions = true,
    description = "Serve the repository's backups over NBD: export DISK@ID for each backup and DISK@latest "
        + "(VM/DISK@latest for disks of a VM). qemu-img, nbdcopy, qemu-nbd --list or a VM can read them directly. "
        + "Stops cleanly on Ctrl-C or SIGTERM.")
public final class ServeCommand implements Callable<Integer> {
    @Mixin
    RepoOptions repo;
    @Mixin
    TlsOptions tls;
    @Mixin
    LoggingMixin logging;

    @Option(names = "--listen", paramLabel = "HOST:PORT",
        description = "TCP address to listen on, e.g. 127.0.0.1:10809 (default: none unless --socket is absent, "
            + "then 127.0.0.1:10809).")
    String listen;

    @Option(names = "--socket", paramLabel = "PATH", description = "Unix socket to listen on.")
    Path socket;

    @Option(names = "--cache-size", paramLabel = "MiB", defaultValue = "256",
        description = "Memory for decompressed chunks shared by all clients (default: ${DEFAULT-VALUE}).")
    int cacheMiB;

    @Option(names = "--read-ahead", paramLabel = "CHUNKS", defaultValue = "8",
        description = "Chunks prefetched after sequential reads (default: ${DEFAULT-VALUE}).")
    int readAhead;

    @Option(names = "--max-connections", paramLabel = "N", defaultValue = "64",
        description = "Concurrent client connections (default: ${DEFAULT-VALUE}).")
    int maxConnections;

    @Override
    public Integer call() throws Exception {
        ServerConfig.Builder b = ServerConfig.builder().maxConnections(maxConnections);
        if (listen == null && socket == null) {
            listen = "127.0.0.1:10809";
        }
        if (listen != null) {
            int colon = listen.lastIndexOf(':');
            if (colon < 0) {
                throw new IllegalArgumentException("--listen " + listen + " (expected: HOST:PORT)");
            }
            String host = listen.substring(0, colon).replace("[", "").replace("]", "");
            b.tcp(host.isEmpty() ? "0.0.0.0" : host, Integer.parseInt(listen.substring(colon + 1)));
        }
        if (socket != null) {
            b.unixSocket(socket);
        }
        b.tls(tls.toConfig(false));
        CountDownLatch stop = new CountDownLatch(1);
        CountDownLatch closed = new CountDownLatch(1);
        try (Repository r = repo.open(LockMode.SHARED);
             BackupExports exports = new BackupExports(r, new ChunkCache((long) cacheMiB << 20), readAhead);
             NbdServer server = NbdServer.start(b.build(), exports)) {
            Thread hook = new Thread(() -> {
                stop.countDown();
                try {
                    closed.await(30, java.util.concurrent.TimeUnit.SECONDS); // the server drains, the repository closes
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }, "jbackup-serve-shutdown");
            Runtime.getRuntime().addShutdownHook(hook);
            System.out.println("jbackup: serving " + exports.list().size() + " exports of " + repo.repo()
                + (server.tcpAddress() != null ? " on nbd://" + hostPort(server.tcpAddress()) : "")
                + (server.socketPath() != null ? " on nbd+unix:///EXPORT?socket=" + server.socketPath() : "")
                + " (Ctrl-C to stop)");
            System.out.flush();
            stop.await();
        } finally {
            closed.countDown();
        }
        return ExitCodes.OK;
    }

    private static String hostPort(java.net.SocketAddress a) {
        if (a instanceof java.net.InetSocketAddress i) {
            String h = i.getAddress().getHostAddress();
            return (h.contains(":") ? "[" + h + "]" : h) + ":" + i.getPort();
        }
        return a.toString();
    }
}
