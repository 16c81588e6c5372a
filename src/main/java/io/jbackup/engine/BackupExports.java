package io.jbackup.engine;

import io.jbackup.model.BackupInfo;
import io.jbackup.nbd.server.ChunkCache;
import io.jbackup.nbd.server.ChunkSource;
import io.jbackup.nbd.server.ChunkedImageExport;
import io.jbackup.nbd.server.ExportListing;
import io.jbackup.nbd.server.ExportProvider;
import io.jbackup.nbd.server.ExtentSource;
import io.jbackup.nbd.server.ForwardingExport;
import io.jbackup.nbd.server.NbdExport;
import io.jbackup.nbd.server.OverlayExport;
import io.jbackup.store.BackupReader;
import io.jbackup.store.Repository;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ForkJoinPool;

/**
 * The repository's backups as NBD exports, for {@code jbackup serve}, each read-only one with the meta contexts of
 * {@link BackupContexts} ({@code qemu:allocation-depth}, and {@code qemu:dirty-bitmap:ID2} against every older
 * backup of the disk):
 * <ul>
 *   <li>{@code DISK@ID} for every complete backup (ID may be any unique prefix when opening);</li>
 *   <li>{@code DISK@latest} for the newest backup of each standalone disk, and {@code VM/DISK@latest} for disks of
 *       a VM (plus {@code DISK@latest} when the disk name is unique in the repository).</li>
 * </ul>
 * Backups are immutable, so one reader per backup is shared by every connection; decompressed chunks are shared
 * through one {@link ChunkCache} keyed by digest.
 *
 * <p><b>Writable</b> (with a {@link Writable} policy): every export is a copy-on-write {@link OverlayExport} over
 * the backup, one per backup (shared by all connections and by all names of that backup, such as
 * {@code DISK@latest} and {@code DISK@ID}), in files named by {@link OverlayFiles}. Overlays are created on first
 * open; an overlay kept from an earlier run is continued. On {@link #close()} they are either kept (listed by
 * {@link #keptOverlays()}, for {@code jbackup commit-overlay}) or, with {@code discardChanges}, deleted.
 */
public final class BackupExports implements ExportProvider, AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(BackupExports.class);

    /**
     * Makes the exports writable.
     *
     * @param dir            where overlays live (created if needed)
     * @param discardChanges throw the overlays away on close: they are created fresh in a temporary directory under
     *                       {@code dir} (so kept overlays there are never touched) and deleted with it
     */
    public record Writable(Path dir, boolean discardChanges) {
    }

    /** An overlay that was kept at close, with the bytes it changed. */
    public record KeptOverlay(String backupId, Path file, long changedBytes) {
    }

    private final Repository repo;
    private final ChunkCache cache;
    private final int readAhead;
    private final Writable writable;
    private final Path overlayDir;
    private final Map<String, BackupReader> readers = new HashMap<>();
    /** Dirty-chunk bitmaps between two backups ({@link BackupContexts}), computed once while serving. */
    private final Map<String, CompletableFuture<java.util.BitSet>> bitmaps =
        new java.util.concurrent.ConcurrentHashMap<>();
    private final Map<String, SharedOverlay> overlays = new LinkedHashMap<>();
    private final List<KeptOverlay> kept = new ArrayList<>();
    private boolean closed;

    /** Read-only exports. */
    public BackupExports(Repository repo, ChunkCache cache, int readAhead) {
        this.repo = repo;
        this.cache = cache;
        this.readAhead = readAhead;
        this.writable = null;
        this.overlayDir = null;
    }

    /** Writable exports with overlays as {@code writable} says. */
    public BackupExports(Repository repo, ChunkCache cache, int readAhead, Writable writable) throws IOException {
        this.repo = repo;
        this.cache = cache;
        this.readAhead = readAhead;
        this.writable = writable;
        try {
            Files.createDirectories(writable.dir());
        } catch (IOException e) {
            throw new IOException("cannot create the overlay directory " + writable.dir() + ": " + e
                + "; choose a writable one with --overlay-dir", e);
        }
        if (writable.discardChanges()) {
            removeStaleDiscardDirs(writable.dir());
        }
        // discard-PID-...: a later run can tell the directory of a process that was killed from one still in use
        this.overlayDir = writable.discardChanges() ? Files.createTempDirectory(writable.dir(), DISCARD_PREFIX
            + ProcessHandle.current().pid() + "-") : writable.dir();
    }

    private static final String DISCARD_PREFIX = "discard-";

    /** Removes the temporary overlay directories of --discard-changes runs whose process is gone (SIGKILL). */
    private static void removeStaleDiscardDirs(Path dir) {
        List<Path> dirs;
        try (var s = Files.list(dir)) {
            dirs = s.filter(p -> p.getFileName().toString().startsWith(DISCARD_PREFIX) && Files.isDirectory(p))
                .toList();
        } catch (IOException e) {
            LOG.warn("cannot list the overlay directory {}: {}", dir, e.toString());
            return;
        }
        for (Path d : dirs) {
            String rest = d.getFileName().toString().substring(DISCARD_PREFIX.length());
            int dash = rest.indexOf('-');
            long pid;
            try {
                pid = dash > 0 ? Long.parseLong(rest.substring(0, dash)) : -1;
            } catch (NumberFormatException e) {
                pid = -1;
            }
            if (pid <= 0 || ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false)) {
                continue; // not named by this version, or its process still runs
            }
            try (var s = Files.walk(d)) {
                for (Path f : s.sorted(Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(f);
                }
                LOG.info("removed {}: the overlays of a --discard-changes run that did not stop cleanly", d);
            } catch (IOException e) {
                LOG.warn("cannot remove the leftover overlay directory {}: {}", d, e.toString());
            }
        }
    }

    /** Whether exports are writable overlays. */
    public boolean writable() {
        return writable != null;
    }

    /** The directory overlays are created in (a temporary one with {@code discardChanges}), or null. */
    public Path overlayDir() {
        return overlayDir;
    }

    /** Export name → backup, in listing order. */
    private static Map<String, BackupInfo> names(Repository repo) throws IOException {
        List<BackupInfo> all = new ArrayList<>();
        for (BackupInfo b : repo.listBackups()) {
            if ("complete".equals(b.state())) {
                all.add(b);
            }
        }
        all.sort(Comparator.comparing(BackupInfo::created));
        Map<String, Integer> diskNames = new HashMap<>();
        Map<String, BackupInfo> latest = new LinkedHashMap<>();
        for (BackupInfo b : all) {
            latest.put((b.vm() == null ? "" : b.vm() + "/") + b.disk(), b);
        }
        for (String key : latest.keySet()) {
            diskNames.merge(key.substring(key.indexOf('/') + 1), 1, Integer::sum);
        }
        Map<String, BackupInfo> out = new LinkedHashMap<>();
        for (Map.Entry<String, BackupInfo> e : latest.entrySet()) {
            out.put(e.getKey() + "@latest", e.getValue());
            String disk = e.getValue().disk();
            if (e.getValue().vm() != null && diskNames.get(disk) == 1) {
                out.put(disk + "@latest", e.getValue());
            }
        }
        for (BackupInfo b : all) {
            out.put(b.disk() + "@" + b.id(), b);
        }
        return out;
    }

    /**
     * How stale the catalog cache of an object store may be when a client lists or opens exports: a serve runs for
     * days, while other hosts commit backups ({@code VM/DISK@latest} moves on) and delete them.
     */
    static final Duration REFRESH_AFTER = Duration.ofSeconds(5);

    /** Refreshes the catalog cache of an object store ({@link Repository#refreshCatalog}); the cache if that fails. */
    private void refresh() {
        try {
            repo.refreshCatalog(REFRESH_AFTER);
        } catch (IOException | RuntimeException e) {
            LOG.warn("could not refresh the catalog cache of {} from the bucket ({}); serving the backups it knows",
                repo.location(), e.getMessage());
        }
    }

    @Override
    public List<ExportListing> list() throws IOException {
        refresh();
        List<ExportListing> out = new ArrayList<>();
        for (Map.Entry<String, BackupInfo> e : names(repo).entrySet()) {
            out.add(new ExportListing(e.getKey(), describe(e.getValue())));
        }
        return out;
    }

    static String describe(BackupInfo b) {
        return b.type() + " backup of " + (b.vm() == null ? "" : b.vm() + "/") + b.disk() + " taken "
            + DateTimeFormatter.ISO_INSTANT.format(b.created()) + ", " + b.imageSize() + " bytes"
            + (b.note() == null || b.note().isEmpty() ? "" : ": " + b.note());
    }

    /**
     * The backup an export name stands for: a listed name ({@code DISK@ID}, {@code DISK@latest},
     * {@code VM/DISK@latest}) or any reference {@link Repository#resolve} accepts after the {@code @} (an id prefix,
     * {@code latest}, {@code @TIME}); null if there is none.
     */
    public static BackupInfo resolve(Repository repo, String name) throws IOException {
        return resolve(repo, name, false);
    }

    /**
     * As {@link #resolve(Repository, String)}; with {@code explain}, a reference that names no backup throws the
     * reason (an ambiguous id prefix, no backup at that time, a time that does not parse) instead of returning
     * null, so a client is told more than "no export named".
     */
    private static BackupInfo resolve(Repository repo, String name, boolean explain) throws IOException {
        BackupInfo b = names(repo).get(name);
        if (b != null) {
            return b;
        }
        int at = name.indexOf('@', name.indexOf('/') + 1); // DISK@@TIME: the reference starts with '@'
        if (at <= 0) {
            return null;
        }
        String disk = name.substring(0, at);
        String vm = null;
        int slash = disk.indexOf('/');
        if (slash > 0) {
            vm = disk.substring(0, slash);
            disk = disk.substring(slash + 1);
        }
        try {
            b = repo.resolve(vm, disk, name.substring(at + 1));
            return b.isComplete() ? b : null;
        } catch (IllegalArgumentException e) {
            if (explain) {
                throw e;
            }
            LOG.info("export '{}' not found: {}", name, e.getMessage());
            return null;
        } catch (IOException e) {
            LOG.info("export '{}' not found: {}", name, e.getMessage());
            return null;
        }
    }

    @Override
    public NbdExport open(String name) throws IOException {
        refresh();
        BackupInfo b = resolve(repo, name, true);
        if (b == null) {
            return null;
        }
        if (writable == null) {
            BackupReader reader = reader(b.id());
            Map<String, ExtentSource> contexts = BackupContexts.of(b, reader, repo.listBackups(), this::reader,
                ForkJoinPool.commonPool(), bitmaps);
            return new ForwardingExport(new ChunkedImageExport(name, describe(b), new ReaderSource(reader), cache,
                readAhead)) {
                @Override
                public Map<String, ExtentSource> metaContexts() {
                    return contexts;
                }
            };
        }
        OverlayExport overlay = overlay(b);
        String description = describe(b) + " (writable overlay " + overlay.overlayFile() + ")";
        return new ForwardingExport(overlay) {
            @Override
            public String name() {
                return name;
            }

            @Override
            public String description() {
                return description;
            }

            @Override
            public void close() {
                // shared by every connection: closed with the provider
            }
        };
    }

    private record SharedOverlay(OverlayFiles files, OverlayExport export) {
    }

    private synchronized OverlayExport overlay(BackupInfo b) throws IOException {
        if (closed) {
            throw new IOException("the server is shutting down");
        }
        SharedOverlay so = overlays.get(b.id());
        if (so != null) {
            return so.export();
        }
        OverlayFiles files = OverlayFiles.openOrCreate(overlayDir, repo.config().id(), b);
        try {
            ChunkedImageExport base = new ChunkedImageExport(b.disk() + "@" + b.id(), describe(b),
                new ReaderSource(reader(b.id())), cache, readAhead);
            OverlayExport o = OverlayExport.open(base, files.data());
            overlays.put(b.id(), new SharedOverlay(files, o));
            LOG.info("writable overlay {} for backup {} ({} bytes changed so far)", files.data(), b.id(),
                o.changedBytes());
            return o;
        } catch (IOException | RuntimeException e) {
            files.close();
            throw e;
        }
    }

    /** Overlays kept by {@link #close()} (empty before, and with {@code discardChanges}). */
    public synchronized List<KeptOverlay> keptOverlays() {
        return List.copyOf(kept);
    }

    private synchronized BackupReader reader(String id) throws IOException {
        BackupReader r = readers.get(id);
        if (r == null) {
            r = repo.openBackup(id);
            readers.put(id, r);
        }
        return r;
    }

    /**
     * Closes the overlays (kept: data synced and map written; or deleted with {@code discardChanges}), the readers,
     * and empties the cache. Call after the server stopped.
     */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (SharedOverlay so : overlays.values()) {
            try {
                if (writable.discardChanges()) {
                    so.export().discard();
                    so.files().delete();
                } else if (so.export().changedBytes() == 0) {
                    // only read (a listing opens every export): nothing to keep or to commit
                    so.export().discard();
                    so.files().delete();
                    LOG.info("removed overlay {}: nothing was written to it", so.files().data());
                } else {
                    long changed = so.export().changedBytes();
                    so.export().close();
                    so.files().close();
                    kept.add(new KeptOverlay(so.files().meta().backupId(), so.files().data(), changed));
                }
            } catch (IOException | RuntimeException e) {
                LOG.warn("closing overlay {}: {}", so.files().data(), e.toString());
            }
        }
        overlays.clear();
        if (writable != null && writable.discardChanges()) {
            try {
                Files.deleteIfExists(overlayDir);
            } catch (IOException e) {
                LOG.warn("cannot remove the temporary overlay directory {}: {}", overlayDir, e.toString());
            }
        }
        cache.close();
        for (BackupReader r : readers.values()) {
            try {
                r.close();
            } catch (Exception e) {
                LOG.debug("closing reader", e);
            }
        }
        readers.clear();
        bitmaps.clear();
    }

    /** A backup as a {@link ChunkSource}. */
    static final class ReaderSource implements ChunkSource {
        private final BackupReader reader;

        ReaderSource(BackupReader reader) {
            this.reader = reader;
        }

        @Override
        public long size() {
            return reader.imageSize();
        }

        @Override
        public int chunkSize() {
            return reader.chunkSize();
        }

        @Override
        public boolean isZero(long index) {
            return reader.isZero(index);
        }

        @Override
        public Object contentKey(long index) {
            return ByteBuffer.wrap(reader.digest(index));
        }

        @Override
        public CompletableFuture<byte[]> readChunk(long index) {
            return reader.readChunkAsync(index);
        }

        @Override
        public CompletableFuture<Void> readChunk(long index, ByteBuffer dst) {
            return reader.readChunkAsync(index, dst);
        }
    }
}
