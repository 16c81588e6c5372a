package io.jbackup.store;

import io.jbackup.model.BackupInfo;

import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;

/**
 * Child JVM for tests that need a separate process (crash, locks, multi-process writers, bounded heap).
 * Prints results on standard output; exits non-zero on failure.
 *
 * <pre>
 * write DIR DISK VERSION SIZE CHUNK [SLEEP_MS]  one backup of ImageModel(SIZE, CHUNK, VERSION, 16): incremental from
 *                                              the disk's latest complete backup if any (puts only changed positions)
 * hold DIR shared|exclusive MILLIS             holds the lock, prints "LOCKED", sleeps, closes
 * attach DIR                                   begins a backup of disk "att" (2 chunks of 64 KiB), attaches
 *                                              "nvram.fd" (300 KiB), prints "ATTACHED ID" and waits to be killed
 * big DIR GIB                                  writes a GIB GiB synthetic disk (64 KiB chunks, 1 in 16 non-zero out
 *                                              of 64 distinct chunks), reads it back, prints "OK peakHeapMiB"
 * </pre>
 */
public final class StoreChild {
    private StoreChild() {
    }

    public static void main(String[] args) throws Exception {
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        switch (args[0]) {
            case "write" -> write(Path.of(args[1]), args[2], Long.parseLong(args[3]), Long.parseLong(args[4]),
                Integer.parseInt(args[5]), args.length > 6 ? Integer.parseInt(args[6]) : 0);
            case "hold" -> hold(Path.of(args[1]), LockMode.valueOf(args[2].toUpperCase()), Long.parseLong(args[3]));
            case "attach" -> attach(Path.of(args[1]));
            case "big" -> big(Path.of(args[1]), Integer.parseInt(args[2]));
            default -> throw new IllegalArgumentException(args[0]);
        }
        System.out.flush();
        System.exit(0);
    }

    private static void attach(Path dir) throws Exception {
        Repository repo = Repository.open(dir, OpenOptions.defaults().withWaitLock(Duration.ofSeconds(30)));
        BackupWriter w = repo.beginBackup(BackupSpec.full(null, "att", 2 * 65536L));
        byte[] chunk = new byte[65536];
        new java.util.Random(7).nextBytes(chunk);
        w.putChunk(0, chunk, chunk.length).get();
        byte[] nvram = new byte[300 * 1024];
        new java.util.Random(8).nextBytes(nvram);
        w.attach("nvram.fd", nvram);
        System.out.println("ATTACHED " + w.id());
        System.out.flush();
        Thread.sleep(60_000);
    }

    private static void write(Path dir, String disk, long version, long size, int chunk, int sleepMs) throws Exception {
        ImageModel m = new ImageModel(size, chunk, version, 16);
        try (Repository repo = Repository.open(dir, OpenOptions.defaults().withWaitLock(Duration.ofSeconds(30)))) {
            Optional<BackupInfo> parent = repo.latestComplete(null, disk);
            ImageModel pm = parent.map(p -> new ImageModel(size, chunk, Long.parseLong(p.labels().get("version")), 16))
                .orElse(null);
            BackupSpec spec = new BackupSpec(null, disk, size, chunk, parent.map(BackupInfo::id).orElse(null),
                parent.isPresent() ? "incremental" : "full", Map.of("version", Long.toString(version)), null, null);
            try (BackupWriter w = repo.beginBackup(spec)) {
                List<CompletableFuture<Void>> fs = new ArrayList<>();
                for (long i = 0; i < m.chunkCount(); i++) {
                    if (pm != null && !m.differs(pm, i)) {
                        continue;
                    }
                    if (m.isZero(i) && i % 2 == 0) {
                        w.putZero(i);
                    } else {
                        fs.add(w.putChunk(i, m.chunk(i), m.length(i)));
                    }
                    if (sleepMs > 0) {
                        Thread.sleep(sleepMs);
                    }
                }
                CompletableFuture.allOf(fs.toArray(CompletableFuture[]::new)).join();
                BackupInfo b = w.commit();
                System.out.println("COMMITTED " + b.id() + " " + b.type());
            }
        }
    }

    private static void hold(Path dir, LockMode mode, long millis) throws Exception {
        try (Repository repo = Repository.open(dir, OpenOptions.defaults().withLockMode(mode))) {
            System.out.println("LOCKED");
            System.out.flush();
            Thread.sleep(millis);
        }
    }

    private static void big(Path dir, int gib) throws Exception {
        int cs = 64 * 1024;
        long size = (long) gib << 30;
        byte[][] distinct = new byte[64][];
        for (int k = 0; k < distinct.length; k++) {
            distinct[k] = Data.chunk(5000 + k, cs);
        }
        byte[] zeros = new byte[cs];
        String id;
        try (Repository repo = Repository.open(dir, OpenOptions.defaults())) {
            try (BackupWriter w = repo.beginBackup(new BackupSpec("bigvm", "vda", size, cs, null, "full", null, null,
                null))) {
                for (long i = 0; i < w.chunkCount(); i++) {
                    if (i % 16 == 0) {
                        w.putChunk(i, distinct[(int) ((i / 16) % distinct.length)], cs);
                    } else if (i % 2 == 0) {
                        w.putChunk(i, zeros, cs);
                    } else {
                        w.putZero(i);
                    }
                }
                BackupInfo b = w.commit();
                id = b.id();
                if (b.stats().chunksNew() != distinct.length) {
                    throw new AssertionError("expected " + distinct.length + " new chunks: " + b.stats());
                }
            }
            try (BackupReader r = repo.openBackup(id)) {
                for (long i = 0; i < r.chunkCount(); i++) {
                    if (i % 16 == 0) {
                        byte[] c = r.readChunk(i);
                        if (!java.util.Arrays.equals(c, distinct[(int) ((i / 16) % distinct.length)])) {
                            throw new AssertionError("chunk " + i + " differs");
                        }
                    } else if (!r.isZero(i)) {
                        throw new AssertionError("chunk " + i + " should be zero");
                    }
                }
            }
        }
        long peak = 0;
        for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans()) {
            if (p.getType() == MemoryType.HEAP) {
                peak += p.getPeakUsage().getUsed();
            }
        }
        System.out.println("OK " + id + " " + (peak >> 20));
    }
}
