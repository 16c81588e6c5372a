package io.jbackup.bench;

import io.jbackup.model.BackupInfo;
import io.jbackup.store.BackupReader;
import io.jbackup.store.BackupSpec;
import io.jbackup.store.BackupWriter;
import io.jbackup.store.Encryption;
import io.jbackup.store.OpenOptions;
import io.jbackup.store.Repository;
import io.jbackup.store.RepositoryOptions;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;

/**
 * Chunk store benchmark (run by {@code bench/store-bench.sh}): puts a data file as a backup (new data), again
 * (duplicate data), an all-zero image of the same size (zero data), then reads the first backup back (get), for
 * each encryption × compression level given, three times in fresh repositories, and prints the best of the three in
 * chunks/s and MB/s (10^6 bytes of image per second).
 *
 * <pre>
 * StoreBench DATA WORKDIR [chunkSize=1048576] [levels=1,3] [encryptions=none,aes-256-gcm] [workers=0]
 * </pre>
 */
public final class StoreBench {
    private StoreBench() {
    }

    public static void main(String[] args) throws Exception {
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        Path data = Path.of(args[0]);
        Path work = Path.of(args[1]);
        int chunkSize = args.length > 2 ? Integer.parseInt(args[2]) : 1 << 20;
        int[] levels = Arrays.stream((args.length > 3 ? args[3] : "1,3").split(",")).mapToInt(Integer::parseInt).toArray();
        String[] encs = (args.length > 4 ? args[4] : "none,aes-256-gcm").split(",");
        int workers = args.length > 5 ? Integer.parseInt(args[5]) : 0;

        List<byte[]> chunks = load(data, chunkSize);
        long size = Files.size(data);
        System.out.printf(Locale.ROOT, "data: %s, %.1f MB, %d chunks of %d bytes, %d processors%n", data, size / 1e6,
            chunks.size(), chunkSize, Runtime.getRuntime().availableProcessors());
        System.out.printf(Locale.ROOT, "%-28s %12s %10s %14s%n", "operation", "chunks/s", "MB/s", "stored");
        warmUp(work.resolve("warmup"), chunks.subList(0, Math.min(128, chunks.size())), chunkSize, workers);
        for (String enc : encs) {
            for (int level : levels) {
                run(work.resolve("repo-" + enc + "-" + level), chunks, size, chunkSize, Encryption.parse(enc), level,
                    workers);
            }
        }
    }

    private static List<byte[]> load(Path data, int chunkSize) throws IOException {
        List<byte[]> out = new ArrayList<>();
        try (InputStream in = Files.newInputStream(data)) {
            while (true) {
                byte[] b = in.readNBytes(chunkSize);
                if (b.length == 0) {
                    return out;
                }
                out.add(b);
            }
        }
    }

    private static void warmUp(Path dir, List<byte[]> chunks, int chunkSize, int workers) throws Exception {
        long size = (long) chunks.size() * chunkSize;
        try (Repository repo = Repository.init(dir, new RepositoryOptions(chunkSize, Encryption.NONE, 1), null)) {
            for (int round = 0; round < 4; round++) {
                boolean zero = round % 2 == 1;
                String id = put(repo, "warm" + round, chunks, size, chunkSize, zero);
                if (!zero) {
                    get(repo, id, chunks);
                }
            }
        }
    }

    private static void run(Path dir, List<byte[]> chunks, long size, int chunkSize, Encryption enc, int level,
                            int workers) throws Exception {
        char[] pass = enc == Encryption.NONE ? null : "bench".toCharArray();
        String tag = enc + " zstd-" + level;
        long[] best = {Long.MAX_VALUE, Long.MAX_VALUE, Long.MAX_VALUE, Long.MAX_VALUE};
        long stored = 0;
        for (int round = 0; round < ROUNDS; round++) {
            Path d = dir.resolveSibling(dir.getFileName() + "-" + round);
            Repository.init(d, new RepositoryOptions(chunkSize, enc, level), pass).close();
            try (Repository repo = Repository.open(d, OpenOptions.defaults().withPassphrase("bench")
                .withWorkerThreads(workers))) {
                long t0 = System.nanoTime();
                String first = put(repo, "new", chunks, size, chunkSize, false);
                long t1 = System.nanoTime();
                put(repo, "dup", chunks, size, chunkSize, false);
                long t2 = System.nanoTime();
                put(repo, "zero", chunks, size, chunkSize, true);
                long t3 = System.nanoTime();
                get(repo, first, chunks);
                long t4 = System.nanoTime();
                long[] t = {t1 - t0, t2 - t1, t3 - t2, t4 - t3};
                for (int i = 0; i < 4; i++) {
                    best[i] = Math.min(best[i], t[i]);
                }
                stored = repo.backup(first).orElseThrow().stats().bytesStored();
            }
            deleteTree(d);
        }
        report("put new  (" + tag + ")", chunks.size(), size, best[0], stored);
        report("put dup  (" + tag + ")", chunks.size(), size, best[1], 0);
        report("put zero (" + tag + ")", chunks.size(), size, best[2], 0);
        report("get      (" + tag + ")", chunks.size(), size, best[3], 0);
    }

    private static final int ROUNDS = 3;

    private static void deleteTree(Path root) throws IOException {
        try (var s = Files.walk(root)) {
            for (Path p : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }

    private static String put(Repository repo, String disk, List<byte[]> chunks, long size, int chunkSize,
                              boolean zero) throws Exception {
        byte[] zeros = new byte[chunkSize];
        try (BackupWriter w = repo.beginBackup(BackupSpec.full("bench", disk, size))) {
            List<CompletableFuture<Void>> fs = new ArrayList<>(chunks.size());
            for (int i = 0; i < chunks.size(); i++) {
                byte[] c = chunks.get(i);
                fs.add(w.putChunk(i, zero ? zeros : c, c.length));
            }
            CompletableFuture.allOf(fs.toArray(CompletableFuture[]::new)).join();
            return w.commit().id();
        }
    }

    private static void get(Repository repo, String id, List<byte[]> chunks) throws Exception {
        try (BackupReader r = repo.openBackup(id)) {
            ArrayDeque<CompletableFuture<byte[]>> window = new ArrayDeque<>();
            int next = 0;
            int done = 0;
            int depth = 2 * Runtime.getRuntime().availableProcessors() + 2;
            while (done < chunks.size()) {
                while (next < chunks.size() && window.size() < depth) {
                    window.add(r.readChunkAsync(next++));
                }
                byte[] got = window.poll().join();
                if (!Arrays.equals(got, chunks.get(done))) {
                    throw new AssertionError("chunk " + done + " differs");
                }
                done++;
            }
        }
    }

    private static void report(String op, int chunks, long bytes, long nanos, long stored) {
        double s = nanos / 1e9;
        System.out.printf(Locale.ROOT, "%-28s %12.0f %10.1f %14s%n", op, chunks / s, bytes / 1e6 / s,
            stored == 0 ? "" : String.format(Locale.ROOT, "%.1f MB (%.2fx)", stored / 1e6, (double) bytes / stored));
    }
}
