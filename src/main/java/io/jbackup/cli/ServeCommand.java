package io.jbackup.cli;

import io.jbackup.engine.BackupExports;
import io.jbackup.engine.BackupServer;
import io.jbackup.engine.OverlayFiles;
import io.jbackup.error.UsageException;
import io.jbackup.nbd.server.ServerConfig;
import io.jbackup.store.LockMode;
import io.jbackup.store.Repository;
import io.jbackup.text.Human;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.OutputStream;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.nio.file.Path;
import java.util.concurrent.Callable;

/**
 * {@code jbackup serve}: serve every backup over NBD for instant recovery, read-only or through writable
 * copy-on-write overlays.
 *
 * <p>SIGTERM and Ctrl-C stop it gracefully: no new connections, requests in flight finish (up to 10 s), overlays
 * are synced and kept (or deleted with {@code --discard-changes}), the Unix socket is removed, and the process
 * exits with 0.
 */
@Command(name = "serve", mixinStandardHelpOptions = true,
    description = {"Serve the repository's backups over NBD: export DISK@ID for each backup and DISK@latest "
        + "(VM/DISK@latest for disks of a VM). qemu-img, nbdcopy, qemu-nbd --list, the kernel's nbd-client or a VM "
        + "can read them at once.",
        "With --writable every export gets a copy-on-write overlay so a VM can boot from a backup; the overlays "
        + "are kept at shutdown (save one as a new backup with 'jbackup commit-overlay') unless --discard-changes.",
        "Stops cleanly on Ctrl-C or SIGTERM and exits with 0."})
public final class ServeCommand implements Callable<Integer> {
    @Mixin
    RepoOptions repo;
    @Mixin
    TlsOptions tls;
    @Mixin
    LoggingMixin logging;

    /** Where {@code serve} listens when neither {@code --listen} nor {@code --socket} is given: loopback only. */
    static final String DEFAULT_LISTEN = "127.0.0.1:10809";

    @Option(names = "--listen", paramLabel = "HOST:PORT",
        description = "TCP address to listen on (default: " + DEFAULT_LISTEN + " when --socket is not given). "
            + "Without a host (:PORT) only loopback is used; other hosts must be named, e.g. 0.0.0.0:10809 or "
            + "[::]:10809 for every interface (then use --tls=require with --tls-creds or --tls-psk-file).")
    String listen;

    @Option(names = "--socket", paramLabel = "PATH", description = "Unix socket to listen on.")
    Path socket;

    @Option(names = "--cache-size", paramLabel = "MiB", defaultValue = "256",
        description = "Memory for decompressed chunks shared by all clients, off the Java heap (default: "
            + "${DEFAULT-VALUE}). More than ~400 MiB needs JBACKUP_OPTS with -XX:MaxDirectMemorySize.")
    long cacheMiB;

    @Option(names = "--read-ahead", paramLabel = "CHUNKS", defaultValue = "8",
        description = "Chunks prefetched after sequential reads (default: ${DEFAULT-VALUE}).")
    int readAhead;

    @Option(names = "--max-connections", paramLabel = "N", defaultValue = "64",
        description = "Concurrent client connections (default: ${DEFAULT-VALUE}).")
    int maxConnections;

    @Option(names = "--writable", description = "Give every export a copy-on-write overlay (a sparse file): "
        + "clients may write, the backup never changes.")
    boolean writable;

    @Option(names = "--overlay-dir", paramLabel = "DIR",
        description = "Where overlays live (default: REPO/overlays). An overlay left there by an earlier run is "
            + "continued.")
    Path overlayDir;

    @Option(names = "--discard-changes", description = "With --writable: start from fresh overlays and delete them "
        + "at shutdown (kept overlays in the directory are not touched).")
    boolean discardChanges;

    @Override
    public Integer call() throws Exception {
        if ((overlayDir != null || discardChanges) && !writable) {
            throw new UsageException("--overlay-dir and --discard-changes go with --writable");
        }
        if (cacheMiB < 0 || cacheMiB > (1L << 24)) {
            throw new UsageException("--cache-size " + cacheMiB + " (expected: 0 .. 16777216 MiB)");
        }
        ServerConfig.Builder b = ServerConfig.builder().maxConnections(maxConnections);
        if (listen == null && socket == null) {
            listen = DEFAULT_LISTEN;
        }
        if (listen != null) {
            b.tcp(parseListen(listen));
        }
        if (socket != null) {
            b.unixSocket(socket);
        }
        b.tls(tls.toServerConfig());
        ServerConfig config = b.build();

        try (StopSignal stop = StopSignal.install("jbackup-serve-shutdown");
             Repository r = repo.open(LockMode.SHARED)) {
            long cacheBytes = cacheMiB << 20;
            BackupServer.Options opts = writable
                ? BackupServer.Options.writable(cacheBytes, readAhead,
                    overlayDir != null ? overlayDir : OverlayFiles.defaultDir(r.dir()), discardChanges)
                : BackupServer.Options.readOnly(cacheBytes, readAhead);
            BackupServer started;
            try {
                started = BackupServer.start(r, config, opts);
            } catch (java.net.BindException e) {
                throw new UsageException(e.getMessage(), e);
            }
            try (BackupServer server = started) {
                PrintStream status = logging.quiet ? new PrintStream(OutputStream.nullOutputStream()) : System.out;
                status.println("jbackup: serving " + Human.count(server.exports().list().size(), "export") + " of "
                    + repo.display() + (writable ? " writable (overlays in " + server.exports().overlayDir()
                    + (discardChanges ? ", discarded at exit" : "") + ")" : " read-only")
                    + (server.server().tcpAddress() != null ? " on nbd://" + hostPort(server.server().tcpAddress())
                    + "/EXPORT" : "")
                    + (server.server().socketPath() != null ? " on nbd+unix:///EXPORT?socket="
                    + server.server().socketPath() : "")
                    + (config.tls().enabled() ? " with TLS (" + config.tls().mode().name().toLowerCase() + ")" : "")
                    + "; Ctrl-C to stop");
                System.out.flush();
                stop.await();
                server.close();
                for (BackupExports.KeptOverlay k : server.keptOverlays()) {
                    System.out.println("jbackup: kept overlay " + k.file() + " (" + k.changedBytes()
                        + " bytes changed in backup " + k.backupId() + "); save it as a new backup with: jbackup "
                        + "commit-overlay --repo " + repo.display() + " --overlay " + k.file());
                }
                status.println("jbackup: stopped");
                System.out.flush();
            }
        }
        return ExitCodes.OK;
    }

    static InetSocketAddress parseListen(String listen) {
        int colon = listen.lastIndexOf(':');
        if (colon < 0) {
            throw new UsageException("--listen " + listen + " (expected: HOST:PORT, e.g. 127.0.0.1:10809)");
        }
        String host = listen.substring(0, colon).replace("[", "").replace("]", "");
        int port;
        try {
            port = Integer.parseInt(listen.substring(colon + 1));
        } catch (NumberFormatException e) {
            throw new UsageException("--listen " + listen + ": port is not a number");
        }
        if (port < 0 || port > 65535) {
            throw new UsageException("--listen " + listen + ": port out of range (0 .. 65535)");
        }
        // no host: loopback, never every interface by accident
        return new InetSocketAddress(host.isEmpty() ? "127.0.0.1" : host, port);
    }

    private static String hostPort(SocketAddress a) {
        if (a instanceof InetSocketAddress i) {
            String h = i.getAddress().getHostAddress();
            return (h.contains(":") ? "[" + h + "]" : h) + ":" + i.getPort();
        }
        return a.toString();
    }
}
