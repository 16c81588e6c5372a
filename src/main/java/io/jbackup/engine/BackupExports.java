package io.jbackup.engine;

import io.jbackup.nbd.server.ChunkCache;
import io.jbackup.nbd.server.ChunkSource;
import io.jbackup.nbd.server.ChunkedImageExport;
import io.jbackup.nbd.server.ExportListing;
import io.jbackup.nbd.server.ExportProvider;
import io.jbackup.nbd.server.NbdExport;
import io.jbackup.store.BackupInfo;
import io.jbackup.store.BackupReader;
import io.jbackup.store.Repository;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/**
 * The repository's backups as NBD exports, for {@code jbackup serve}:
 * <ul>
 *   <li>{@code DISK@ID} for every complete backup (ID may be any unique prefix when opening);</li>
 *   <li>{@code DISK@latest} for the newest backup of each standalone disk, and {@code VM/DISK@latest} for disks of
 *       a VM (plus {@code DISK@latest} when the disk name is unique in the repository).</li>
 * </ul>
 * Backups are immutable, so one reader per backup is shared by every connection; decompressed chunks are shared
 * through one {@link ChunkCache} keyed by digest.
 */
public final class BackupExports implements ExportProvider, AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(BackupExports.class);

    private final Repository repo;
    private final ChunkCache cache;
    private final int readAhead;
    private final Map<String, BackupReader> readers = new HashMap<>();

    public BackupExports(Repository repo, ChunkCache cache, int readAhead) {
        this.repo = repo;
        this.cache = cache;
        this.readAhead = readAhead;
    }

    /** Export name → backup, in listing order. */
    private Map<String, BackupInfo> names() throws IOException {
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

    @Override
    public List<ExportListing> list() throws IOException {
        List<ExportListing> out = new ArrayList<>();
        for (Map.Entry<String, BackupInfo> e : names().entrySet()) {
            out.add(new ExportListing(e.getKey(), describe(e.getValue())));
        }
        return out;
    }

    static String describe(BackupInfo b) {
        return b.type() + " backup of " + (b.vm() == null ? "" : b.vm() + "/") + b.disk() + " taken "
            + DateTimeFormatter.ISO_INSTANT.format(b.created()) + ", " + b.imageSize() + " bytes"
            + (b.note() == null || b.note().isEmpty() ? "" : ": " + b.note());
    }

    @Override
    public NbdExport open(String name) throws IOException {
        BackupInfo b = names().get(name);
        if (b == null) {
            int at = name.lastIndexOf('@');
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
            } catch (IOException | IllegalArgumentException e) {
                LOG.info("export '{}' not found: {}", name, e.getMessage());
                return null;
            }
        }
        BackupReader reader = reader(b.id());
        return new ChunkedImageExport(name, describe(b), new ReaderSource(reader), cache, readAhead);
    }

    private synchronized BackupReader reader(String id) throws IOException {
        BackupReader r = readers.get(id);
        if (r == null) {
            r = repo.openBackup(id);
            readers.put(id, r);
        }
        return r;
    }

    @Override
    public synchronized void close() {
        for (BackupReader r : readers.values()) {
            try {
                r.close();
            } catch (Exception e) {
                LOG.debug("closing reader", e);
            }
        }
        readers.clear();
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
    }
}
