package io.jbackup.store;

import io.jbackup.catalog.Catalog;
import io.jbackup.catalog.ChunkLocation;
import io.jbackup.catalog.ChunkRow;
import io.jbackup.catalog.PackRow;
import io.jbackup.model.RepositoryException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Reads and checks chunks for every reader of a repository (restore, serve, verify, gc): the catalog gives the
 * record's place, the pack store ({@link PackFiles}) its bytes, the codec checks and decodes them. A chunk found
 * damaged is quarantined (out of deduplication), so the next backup that meets its data stores it again; an intact
 * copy of it in another pack (stored again by a later backup or by another host) is found and used instead.
 */
final class ChunkReader {
    private static final Logger LOG = LoggerFactory.getLogger(ChunkReader.class);

    private final RepositoryContext ctx;
    private final Catalog catalog;
    private final Storage storage;
    private final PackFiles packFiles;
    /** Damaged chunks with no intact copy in another pack, so that each is looked for once per open repository. */
    private final Set<String> withoutCopy = ConcurrentHashMap.newKeySet();
    /** Packs found missing after which the catalog's packs were synced with the object store ({@link #relocated}). */
    private final Set<String> packsResynced = new HashSet<>();

    ChunkReader(RepositoryContext ctx) {
        this.ctx = ctx;
        this.catalog = ctx.catalog();
        this.storage = ctx.storage();
        this.packFiles = ctx.packFiles();
    }

    /**
     * Reads and checks one chunk. {@code backupId}/{@code diskOffset} only serve error messages (null/-1 if none).
     */
    byte[] readChunk(byte[] digest, int expectedLen, String backupId, long diskOffset) throws IOException {
        ctx.checkOpen();
        ChunkLocation loc = catalog.findChunk(digest);
        if (loc == null) {
            Optional<Catalog.DamagedChunk> d = catalog.damagedChunk(digest);
            if (d.isPresent()) {
                ChunkLocation at = d.get().location();
                byte[] copy = readAnotherCopy(digest, at, expectedLen, backupId, diskOffset);
                if (copy != null) {
                    return copy;
                }
                throw new ChunkCorruptException(storage.describePack(at.pack()), at.offset(), ChunkId.hex(digest),
                    backupId, diskOffset, d.get().problem() + ", found " + d.get().found()
                    + "; the next backup that reads this data stores it again");
            }
            throw new RepositoryException("chunk " + ChunkId.hex(digest) + (backupId == null ? "" : " (backup "
                + backupId + ", disk offset " + diskOffset + ")") + " is not in the catalog; if the catalog is out of "
                + "date, rebuild it with: jbackup repair --rebuild-catalog; otherwise run jbackup verify");
        }
        try {
            try {
                return readRecord(loc, digest, expectedLen, backupId, diskOffset);
            } catch (RepositoryException e) {
                if (storage.packExists(loc.pack())) {
                    throw e;
                }
                // gc repacked the chunk meanwhile and deleted the old pack: read it where the catalog says now
                ChunkLocation moved = relocated(digest, loc);
                if (moved == null || moved.equals(loc)) {
                    throw e;
                }
                loc = moved;
                return readRecord(moved, digest, expectedLen, backupId, diskOffset);
            }
        } catch (ChunkCorruptException e) {
            quarantine(digest, loc, e.problem());
            byte[] copy = readAnotherCopy(digest, loc, expectedLen, backupId, diskOffset);
            if (copy != null) {
                return copy;
            }
            throw e;
        }
    }

    /**
     * Where the catalog finds a chunk now that its pack {@code gone.pack()} is missing. In an object store the gc that
     * deleted or repacked the pack may have run on another host, so first the catalog's packs are brought in step
     * with the bucket ({@link RemoteCatalog#syncPacks}: vanished packs forgotten, new ones registered), once per
     * missing pack however many reads meet it.
     */
    private ChunkLocation relocated(byte[] digest, ChunkLocation gone) throws IOException {
        if (storage.remote()) {
            synchronized (packsResynced) {
                if (packsResynced.add(gone.pack())) {
                    LOG.info("pack {} is gone (a gc on another host?): registering the packs of the bucket anew",
                        gone.pack());
                    RemoteCatalog.syncPacks(ctx, new HashSet<>(storage.packNames()));
                }
            }
        }
        return catalog.findChunk(digest);
    }

    /**
     * {@link #readChunk(byte[], int, String, long)} into {@code dst} (position advanced by {@code expectedLen}): the
     * usual case, an intact record where the catalog says, is decoded straight into {@code dst} with no array
     * allocated; anything else (damage, a chunk moved by gc, another copy) takes the general path, which reports or
     * heals it the same way.
     */
    void readChunk(byte[] digest, int expectedLen, String backupId, long diskOffset, ByteBuffer dst)
        throws IOException {
        ctx.checkOpen();
        ChunkLocation loc = catalog.findChunk(digest);
        if (loc != null) {
            int pos = dst.position();
            try {
                readRecordInto(loc, digest, expectedLen, backupId, diskOffset, dst);
                return;
            } catch (IOException e) {
                dst.position(pos); // read it again on the general path: it quarantines, looks for copies, reports
                LOG.debug("chunk {} at {}: {}; reading it again", ChunkId.hex(digest), loc, e.getMessage());
            }
        }
        dst.put(readChunk(digest, expectedLen, backupId, diskOffset));
    }

    /**
     * Looks for an intact copy of a chunk found damaged at {@code damaged} in the other packs: a later backup, or
     * another host, may have stored its data again, and a catalog keeps one location per chunk (a host that rebuilt
     * its catalog may know only the damaged one). Reads the footers of the registered packs; the first copy that
     * reads intact becomes the chunk's location in the catalog. Returns null if there is none. Only runs on damage,
     * and once per chunk without a copy while the repository is open.
     */
    private byte[] readAnotherCopy(byte[] digest, ChunkLocation damaged, int expectedLen, String backupId,
                                   long diskOffset) throws IOException {
        String hex = ChunkId.hex(digest);
        if (withoutCopy.contains(hex)) {
            return null;
        }
        for (PackRow p : catalog.packs()) {
            if (p.name().equals(damaged.pack())) {
                continue;
            }
            PackReader.Contents c;
            try (Storage.Ranged in = storage.openPack(p.name())) {
                c = PackReader.readFooter(in, p.name(), ctx::metaMac, ctx.codec().encrypted());
            } catch (IOException e) { // vanished or damaged itself: verify reports it
                LOG.debug("pack {} skipped looking for chunk {}: {}", p.name(), hex, e.getMessage());
                continue;
            }
            for (ChunkRow row : c.entries()) {
                if (!Arrays.equals(row.digest(), digest)) {
                    continue;
                }
                ChunkLocation at = new ChunkLocation(p.name(), row.offset(), row.length(), row.rawLength());
                try {
                    byte[] data = readRecord(at, digest, expectedLen, backupId, diskOffset);
                    catalog.relocate(p.name(), c.fileSize(), List.of(row));
                    LOG.info("chunk {} is damaged in pack {}; read its intact copy in pack {} and use that from now on",
                        hex, damaged.pack(), p.name());
                    return data;
                } catch (ChunkCorruptException again) {
                    LOG.debug("the copy of chunk {} in pack {} is damaged too", hex, p.name());
                }
            }
        }
        withoutCopy.add(hex);
        return null;
    }

    /**
     * Takes a chunk found damaged at {@code at} out of deduplication ({@link Catalog#quarantine}), so the next
     * backup that meets its data stores it again and heals every backup that uses it.
     */
    void quarantine(byte[] digest, ChunkLocation at, String problem) {
        try {
            if (catalog.quarantine(digest, at, problem)) {
                LOG.warn("chunk {} in pack {} at offset {} is damaged ({}); it is no longer used for deduplication: "
                    + "the next backup that reads its data stores it again", ChunkId.hex(digest), at.pack(),
                    at.offset(), problem);
            }
        } catch (RepositoryException e) {
            LOG.warn("cannot record damaged chunk {} in the catalog: {}", ChunkId.hex(digest), e.getMessage());
        }
    }

    byte[] readRecord(ChunkLocation loc, byte[] digest, int expectedLen, String backupId, long diskOffset)
        throws IOException {
        return decodeRecord(loc, digest, expectedLen, backupId, diskOffset, null);
    }

    private void readRecordInto(ChunkLocation loc, byte[] digest, int expectedLen, String backupId, long diskOffset,
                                ByteBuffer dst) throws IOException {
        decodeRecord(loc, digest, expectedLen, backupId, diskOffset, dst);
    }

    /** Reads and decodes a record: into a new array (returned) when {@code dst} is null, else into {@code dst}. */
    private byte[] decodeRecord(ChunkLocation loc, byte[] digest, int expectedLen, String backupId, long diskOffset,
                                ByteBuffer dst) throws IOException {
        ctx.requireKey();
        String pack = storage.describePack(loc.pack());
        if (loc.length() <= PackFormat.RECORD_HEADER_SIZE || loc.length() > PackFormat.MAX_RECORD_SIZE) {
            throw new ChunkCorruptException(pack, loc.offset(), ChunkId.hex(digest), backupId, diskOffset,
                "catalog gives record length " + loc.length());
        }
        ChunkCodec codec = ctx.codec();
        ChunkCodec.Scratch s = codec.borrow();
        try {
            byte[] rec = s.record(loc.length());
            try {
                packFiles.read(loc.pack(), ByteBuffer.wrap(rec, 0, loc.length()), loc.offset());
            } catch (TruncatedObjectException e) {
                throw new ChunkCorruptException(pack, loc.offset(), ChunkId.hex(digest), backupId, diskOffset,
                    "pack is truncated");
            } catch (RepositoryException e) {
                if (e.getCause() instanceof java.nio.file.NoSuchFileException) {
                    throw new ChunkCorruptException(pack, loc.offset(), ChunkId.hex(digest), backupId, diskOffset,
                        "pack file is missing");
                }
                throw e;
            }
            if (dst == null) {
                return codec.decode(s, rec, loc.length(), digest, expectedLen);
            }
            codec.decodeInto(s, rec, loc.length(), digest, expectedLen, dst);
            return null;
        } catch (ChunkCodec.RecordException e) {
            throw new ChunkCorruptException(pack, loc.offset(), ChunkId.hex(digest), backupId, diskOffset,
                e.getMessage());
        } finally {
            codec.release(s);
        }
    }
}
