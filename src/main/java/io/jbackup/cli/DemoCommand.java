package io.jbackup.cli;

import io.jbackup.engine.QemuNbdProcess;
import io.jbackup.engine.BackupEngine;
import io.jbackup.engine.BackupMode;
import io.jbackup.engine.Cancellation;
import io.jbackup.engine.DiskJob;
import io.jbackup.engine.DiskRestore;
import io.jbackup.engine.DiskResult;
import io.jbackup.engine.EngineOptions;
import io.jbackup.engine.FileTarget;
import io.jbackup.engine.ProgressListener;
import io.jbackup.engine.RestoreResult;
import io.jbackup.nbd.client.ClientOptions;
import io.jbackup.nbd.client.NbdUri;
import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.server.ExtentSource;
import io.jbackup.nbd.server.MemoryExport;
import io.jbackup.nbd.server.NbdExport;
import io.jbackup.nbd.server.NbdServer;
import io.jbackup.nbd.server.ReadResult;
import io.jbackup.nbd.server.ServerConfig;
import io.jbackup.nbd.server.SimpleExportProvider;
import io.jbackup.catalog.Catalog;
import io.jbackup.store.BackupReader;
import io.jbackup.store.Encryption;
import io.jbackup.store.Repository;
import io.jbackup.store.RepositoryOptions;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;

/**
 * {@code jbackup demo}: the whole cycle on a sample disk in a temporary directory, then cleans up (also on
 * Ctrl-C). With qemu-img, qemu-io and qemu-nbd installed: a qcow2 with a persistent dirty bitmap served by
 * {@code qemu-nbd -r -B demo -A}; otherwise the built-in NBD server exporting the disk from memory with a synthetic
 * {@code qemu:dirty-bitmap:demo} context. Full backup, change some data, incremental backup, restore both, compare
 * SHA-256s with the disk at each point, print the figures.
 */
@Command(name = "demo", mixinStandardHelpOptions = true, sortOptions = false, description = {
    "Try jbackup end to end on a sample 64 MiB disk in a temporary directory: full backup, change data, "
        + "incremental backup through a dirty bitmap, restore both, compare SHA-256s, print the figures, clean up.",
    "Uses qemu-img/qemu-io/qemu-nbd when installed, else the built-in NBD server with a synthetic dirty bitmap."})
public final class DemoCommand implements Callable<Integer> {
    static final String BITMAP = "demo";
    static final int SIZE = 64 << 20;

    @Spec
    CommandSpec spec;
    @Mixin
    JsonMixin json;
    @Mixin
    LoggingMixin logging;

    @Option(names = "--builtin", description = "Use the built-in NBD server even if qemu-nbd is installed.")
    boolean builtin;

    @Option(names = "--keep", description = "Keep the temporary directory (repository, images) and print its path.")
    boolean keep;

    /** One source of the demo disk: serves it, changes it, and tells its SHA-256. */
    interface Source extends AutoCloseable {
        String describe();

        NbdUri uri();

        /** SHA-256 of the disk as it is now. */
        String sha256() throws IOException;

        /** Changes some data (the dirty bitmap records it) and serves the changed disk. */
        void change() throws IOException;

        @Override
        void close();
    }

    @Override
    public Integer call() throws Exception {
        Cancellation cancel = new Cancellation();
        // Ctrl-C / SIGTERM cancel the body, which stops its source and deletes the directory before the process
        // exits (Interrupts waits for the body to return)
        return Interrupts.run(cancel, () -> {
            Path dir = Files.createTempDirectory("jbackup-demo-");
            try {
                return run(dir, cancel);
            } finally {
                if (!keep) {
                    delete(dir);
                }
            }
        });
    }

    private int run(Path dir, Cancellation cancel) throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        boolean text = !json.enabled();
        boolean qemu = !builtin && onPath("qemu-img") && onPath("qemu-io") && onPath("qemu-nbd");
        Map<String, Object> report = new LinkedHashMap<>();
        report.put("directory", dir.toString());
        try (Source src = qemu ? new QemuSource(dir) : new BuiltinSource(dir);
             Repository repo = Repository.init(dir.resolve("repo"), new RepositoryOptions(256 << 10, Encryption.NONE,
                 RepositoryOptions.DEFAULT_COMPRESSION_LEVEL, RepositoryOptions.DEFAULT_PACK_SIZE), null)) {
            report.put("source", src.describe());
            if (text) {
                out.printf("jbackup demo in %s%n", dir);
                out.printf("Source: %s%n", src.describe());
                out.printf("Repository: %s (chunk size 256 KiB, zstd, unencrypted)%n%n", repo.dir());
                out.flush();
            }
            EngineOptions eo = EngineOptions.defaults();
            String sha0 = src.sha256();
            DiskResult full = backup(repo, eo, src.uri(), BackupMode.FULL, cancel);
            line(out, text, "1. full backup", full);
            src.change();
            String sha1 = src.sha256();
            DiskResult inc = backup(repo, eo, src.uri(), BackupMode.INCREMENTAL, cancel);
            line(out, text, "2. incremental", inc);

            List<Map<String, Object>> checks = new ArrayList<>();
            boolean allMatch = true;
            for (Object[] c : new Object[][] {{full, sha0}, {inc, sha1}}) {
                DiskResult r = (DiskResult) c[0];
                Path target = dir.resolve("restore-" + r.type() + ".raw");
                RestoreResult rr;
                try (BackupReader reader = repo.openBackup(r.backupId());
                     FileTarget t = FileTarget.open(target, reader.imageSize(), false, false)) {
                    rr = new DiskRestore(reader, t, false, 16, ProgressListener.NONE, cancel).run();
                }
                String got = sha256(target);
                boolean match = got.equals(c[1]);
                allMatch &= match;
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("backup", r.backupId());
                m.put("type", r.type());
                m.put("sha256Disk", c[1]);
                m.put("sha256Restored", got);
                m.put("match", match);
                m.put("seconds", rr.seconds());
                checks.add(m);
                if (text) {
                    out.printf(Locale.ROOT, "%d. restore %-11s %s  sha256 %s  %s (%.2f s)%n", checks.size() + 2,
                        r.type(), r.backupId(), got.substring(0, 16) + "...", match ? "= disk at that time: OK"
                            : "!= disk (" + ((String) c[1]).substring(0, 16) + "...): MISMATCH", rr.seconds());
                }
            }
            Catalog.Totals t = repo.totals();
            report.put("backups", List.of(full, inc));
            report.put("restores", checks);
            Map<String, Object> totals = new LinkedHashMap<>();
            totals.put("uniqueChunks", t.chunks());
            totals.put("uniqueBytes", t.chunkRawBytes());
            totals.put("storedBytes", t.chunkStoredBytes());
            totals.put("packBytes", t.packBytes());
            totals.put("logicalBytes", t.logicalBytes());
            report.put("repository", totals);
            report.put("ok", allMatch);
            if (text) {
                out.printf(Locale.ROOT, "%nRepository: %d unique chunks, %s of data stored as %s (compression %.1fx); "
                        + "2 backups of %s each (%.1fx less than two copies).%n", t.chunks(),
                    Sizes.format(t.chunkRawBytes()), Sizes.format(t.packBytes()),
                    t.chunkStoredBytes() == 0 ? 0.0 : (double) t.chunkRawBytes() / t.chunkStoredBytes(),
                    Sizes.format(SIZE), t.packBytes() == 0 ? 0.0 : 2.0 * SIZE / t.packBytes());
                out.println(allMatch ? "Both backups restore bit-exact." : "A restore did NOT match: please report this.");
                out.println(keep ? "Kept " + dir + " (delete it when done)." : "Cleaned up " + dir + ".");
                out.println();
                out.println("Next: jbackup init --repo DIR, then jbackup full --repo DIR --disk vda --source NBD-URI "
                    + "(see docs/operations.md).");
                out.flush();
            }
        }
        if (json.enabled()) {
            json.print(report);
        }
        return Boolean.TRUE.equals(report.get("ok")) ? ExitCodes.OK : ExitCodes.DAMAGE;
    }

    private static DiskResult backup(Repository repo, EngineOptions eo, NbdUri uri, BackupMode mode,
                                     Cancellation cancel) throws Exception {
        DiskJob job = new DiskJob("demo", "disk0", uri, ClientOptions.defaults(), mode,
            mode == BackupMode.FULL ? null : BITMAP, Map.of("demo", "true"), "jbackup demo");
        DiskResult r = new BackupEngine(repo, eo, ProgressListener.NONE, cancel).run(List.of(job)).get(0);
        if (!r.ok()) {
            throw r.error() instanceof Exception e ? e : new IOException(r.reason());
        }
        return r;
    }

    private static void line(PrintWriter out, boolean text, String what, DiskResult r) {
        if (!text) {
            return;
        }
        out.printf(Locale.ROOT, "%s %s: read %s of %s, %s new, %s deduplicated, %s zero, %s written to packs "
                + "(%.2f s)%n", what, r.backupId(), Sizes.format(r.bytesRead()), Sizes.format(r.imageSize()),
            Sizes.format(r.bytesNew()), Sizes.format(r.bytesDedup()), Sizes.format(r.bytesZero()),
            Sizes.format(r.bytesStored()), r.seconds());
        out.flush();
    }

    // ------------------------------------------------------------------------------------------------ qemu source

    /** A qcow2 with a persistent bitmap, served by qemu-nbd -r -B demo -A on a unix socket. */
    static final class QemuSource implements Source {
        private final Path dir;
        private final Path image;
        private QemuNbdProcess server;

        QemuSource(Path dir) throws IOException {
            this.dir = dir;
            this.image = dir.resolve("disk0.qcow2");
            Path raw = dir.resolve("initial.raw");
            Files.write(raw, initialData());
            run("qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw.toString(), image.toString());
            Files.delete(raw);
            // the bitmap records every write from now on: the next incremental reads only those
            run("qemu-img", "bitmap", "--add", image.toString(), BITMAP);
            serve();
        }

        @Override
        public String describe() {
            return "qcow2 " + image.getFileName() + " (64 MiB, persistent bitmap '" + BITMAP + "') served by qemu-nbd "
                + "-r -B " + BITMAP + " -A";
        }

        private void serve() throws IOException {
            server = QemuNbdProcess.start(QemuNbdProcess.locate(), dir, "qemu-nbd-",
                List.of("-r", "-t", "-f", "qcow2", "-B", BITMAP, "-A", image.toString()), "qemu-nbd did not start");
        }

        @Override
        public NbdUri uri() {
            return server.uri();
        }

        @Override
        public String sha256() throws IOException {
            Path raw = dir.resolve("snapshot.raw");
            Files.deleteIfExists(raw);
            run("qemu-img", "convert", "-U", "-O", "raw", image.toString(), raw.toString());
            try {
                return DemoCommand.sha256(raw);
            } finally {
                Files.deleteIfExists(raw);
            }
        }

        @Override
        public void change() throws IOException {
            stop();
            Path a = dir.resolve("patch-a.raw");
            Path b = dir.resolve("patch-b.raw");
            byte[] pa = new byte[1 << 20];
            byte[] pb = new byte[512 << 10];
            fill(pa, 0, pa.length, 4);
            fill(pb, 0, pb.length, 5);
            Files.write(a, pa);
            Files.write(b, pb);
            run("qemu-io", "-f", "qcow2", "-c", "write -s " + a + " 1M 1M", "-c", "write -s " + b + " 32M 512k",
                "-c", "write -z 8M 1M", image.toString());
            Files.delete(a);
            Files.delete(b);
            serve();
        }

        private synchronized void stop() {
            if (server != null) {
                server.close();
                server = null;
            }
        }

        @Override
        public void close() {
            stop();
        }
    }

    // --------------------------------------------------------------------------------------------- built-in source

    /**
     * The disk in memory, exported by the built-in server with {@code base:allocation} and a synthetic
     * {@code qemu:dirty-bitmap:demo}: the ranges {@link #change} wrote.
     */
    static final class BuiltinSource implements Source {
        private final byte[] data = new byte[SIZE];
        private final List<long[]> dirty = new ArrayList<>();
        private final Path sock;
        private final NbdServer server;

        BuiltinSource(Path dir) throws IOException {
            System.arraycopy(initialData(), 0, data, 0, SIZE);
            this.sock = dir.resolve("nbd.sock");
            MemoryExport mem = new MemoryExport("disk0", "jbackup demo disk", data, true);
            NbdExport export = new DirtyExport(mem, this);
            server = NbdServer.start(ServerConfig.builder().unixSocket(sock).build(),
                new SimpleExportProvider().addShared(export));
        }


        @Override
        public String describe() {
            return "64 MiB disk in memory, exported by the built-in NBD server with a synthetic qemu:dirty-bitmap:"
                + BITMAP + " context (qemu-nbd not used)";
        }

        @Override
        public NbdUri uri() {
            return NbdUri.unix(sock, "disk0", false);
        }

        @Override
        public String sha256() {
            return hex(sha(data));
        }

        @Override
        public synchronized void change() {
            fill(data, 1 << 20, 1 << 20, 4);
            dirty.add(new long[] {1 << 20, 1 << 20});
            fill(data, 32 << 20, 512 << 10, 5);
            dirty.add(new long[] {32 << 20, 512 << 10});
            java.util.Arrays.fill(data, 8 << 20, 9 << 20, (byte) 0);
            dirty.add(new long[] {8 << 20, 1 << 20});
        }

        /** Dirty-bitmap extents from {@code offset}: 1 = dirty, 0 = clean, consecutive, ending at {@code end}. */
        synchronized List<Extent> dirtyExtents(long offset, long length) {
            long end = Math.min(SIZE, offset + length);
            List<long[]> ranges = new ArrayList<>(dirty);
            ranges.sort((a, b) -> Long.compare(a[0], b[0]));
            List<Extent> out = new ArrayList<>();
            long pos = offset;
            for (long[] r : ranges) {
                long s = Math.max(r[0], pos);
                long e = Math.min(r[0] + r[1], end);
                if (e <= s) {
                    continue;
                }
                if (s > pos) {
                    out.add(new Extent(pos, s - pos, 0));
                }
                out.add(new Extent(s, e - s, 1));
                pos = e;
            }
            if (pos < end) {
                out.add(new Extent(pos, end - pos, 0));
            }
            return out;
        }

        @Override
        public synchronized void close() {
            server.close();
        }
    }

    /** The memory export plus the synthetic dirty bitmap context. */
    private record DirtyExport(MemoryExport mem, BuiltinSource src) implements NbdExport {
        @Override
        public String name() {
            return mem.name();
        }

        @Override
        public String description() {
            return mem.description();
        }

        @Override
        public long size() {
            return mem.size();
        }

        @Override
        public boolean readOnly() {
            return true;
        }

        @Override
        public CompletableFuture<ReadResult> read(long offset, int length) {
            synchronized (src) {
                return mem.read(offset, length);
            }
        }

        @Override
        public CompletableFuture<List<Extent>> allocation(long offset, long length) {
            return mem.allocation(offset, length);
        }

        @Override
        public Map<String, ExtentSource> metaContexts() {
            ExtentSource s = (off, len) -> CompletableFuture.completedFuture(src.dirtyExtents(off, len));
            return Map.of(io.jbackup.nbd.protocol.NbdConstants.CONTEXT_DIRTY_BITMAP_PREFIX + BITMAP, s);
        }
    }

    // ----------------------------------------------------------------------------------------------------- helpers

    /**
     * The sample disk: data at [0, 4M), [8M, 14M) and [24M, 26M), a copy of [0, 4M) at [40M, 44M) (deduplicated),
     * zeroes elsewhere. {@link Source#change} then rewrites [1M, 2M) and [32M, 32.5M) and zeroes [8M, 9M).
     */
    static byte[] initialData() {
        byte[] d = new byte[SIZE];
        fill(d, 0, 4 << 20, 1);
        fill(d, 8 << 20, 6 << 20, 2);
        fill(d, 24 << 20, 2 << 20, 3);
        System.arraycopy(d, 0, d, 40 << 20, 4 << 20);
        return d;
    }

    /** Half compressible text, half random, alternating per 4 KiB block. */
    static void fill(byte[] d, int off, int len, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        String words = "jbackup demo: qemu nbd chunk pack index catalog restore ";
        for (int i = 0; i < len; i++) {
            d[off + i] = (i & 4096) == 0 ? (byte) words.charAt(i % words.length()) : (byte) r.nextInt(256);
        }
    }

    static boolean onPath(String tool) {
        for (String d : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
            if (Files.isExecutable(Path.of(d.isEmpty() ? "." : d, tool))) {
                return true;
            }
        }
        return false;
    }

    private static void run(String... cmd) throws IOException {
        DemoImage.run(cmd);
    }


    static String sha256(Path file) throws IOException {
        MessageDigest md = newSha();
        byte[] buf = new byte[1 << 20];
        try (InputStream in = Files.newInputStream(file)) {
            for (int n; (n = in.read(buf)) > 0; ) {
                md.update(buf, 0, n);
            }
        }
        return hex(md.digest());
    }

    private static byte[] sha(byte[] data) {
        return newSha().digest(data);
    }

    private static MessageDigest newSha() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static String hex(byte[] b) {
        return HexFormat.of().formatHex(b);
    }

    private static void delete(Path dir) {
        DemoImage.deleteTree(dir);
    }

}
