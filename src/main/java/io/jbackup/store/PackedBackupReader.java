package io.jbackup.store;

import io.jbackup.error.NotFoundException;
import io.jbackup.model.AttachmentInfo;
import io.jbackup.model.BackupInfo;
import io.jbackup.model.RepositoryException;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

/** The {@link BackupReader} of a {@link Repository}: a verified index file plus chunk reads through the catalog. */
final class PackedBackupReader implements BackupReader {
    private final RepositoryContext repo;
    private final ChunkReader reader;
    private final BackupInfo info;
    private final IndexReader index;
    private final String indexDamage; // null unless the index was salvaged

    PackedBackupReader(RepositoryContext repo, ChunkReader reader, BackupInfo info, IndexReader index) {
        this(repo, reader, info, index, null);
    }

    PackedBackupReader(RepositoryContext repo, ChunkReader reader, BackupInfo info, IndexReader index,
                       String indexDamage) {
        this.repo = repo;
        this.reader = reader;
        this.info = info;
        this.index = index;
        this.indexDamage = indexDamage;
    }

    @Override
    public BackupInfo info() {
        return info;
    }

    @Override
    public long imageSize() {
        return info.imageSize();
    }

    @Override
    public int chunkSize() {
        return info.chunkSize();
    }

    @Override
    public long chunkCount() {
        return index.chunkCount();
    }

    @Override
    public boolean isZero(long index) {
        return ChunkId.isZeroDigest(digest(index));
    }

    @Override
    public byte[] digest(long i) {
        byte[] d = new byte[ChunkId.LENGTH];
        try {
            index.digest(i, d);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return d;
    }

    @Override
    public byte[] readChunk(long i) throws IOException {
        byte[] d = new byte[ChunkId.LENGTH];
        index.digest(i, d);
        int len = chunkLength(i);
        if (ChunkId.isZeroDigest(d)) {
            return new byte[len];
        }
        if (indexDamage == null) {
            return reader.readChunk(d, len, info.id(), i * info.chunkSize());
        }
        if (java.util.Arrays.equals(d, IndexFile.LOST)) {
            throw new RepositoryException("the entry of disk offset " + i * info.chunkSize() + " is lost: " + indexDamage);
        }
        try {
            return reader.readChunk(d, len, info.id(), i * info.chunkSize());
        } catch (ChunkCorruptException e) {
            throw e;
        } catch (RepositoryException e) {
            throw new RepositoryException("the entry of disk offset " + i * info.chunkSize() + " names chunk "
                + ChunkId.hex(d) + ", which is in no pack: the entry is probably damaged (" + indexDamage + ")", e);
        }
    }

    @Override
    public void readChunk(long i, java.nio.ByteBuffer dst) throws IOException {
        if (indexDamage != null) {
            dst.put(readChunk(i)); // salvaged index: the general path explains lost entries
            return;
        }
        byte[] d = new byte[ChunkId.LENGTH];
        index.digest(i, d);
        int len = chunkLength(i);
        if (ChunkId.isZeroDigest(d)) {
            int pos = dst.position();
            for (int k = 0; k < len; k++) {
                dst.put(pos + k, (byte) 0);
            }
            dst.position(pos + len);
            return;
        }
        reader.readChunk(d, len, info.id(), i * info.chunkSize(), dst);
    }

    @Override
    public CompletableFuture<Void> readChunkAsync(long i, java.nio.ByteBuffer dst) {
        try {
            return CompletableFuture.runAsync(() -> {
                try {
                    readChunk(i, dst);
                } catch (IOException e) {
                    throw new CompletionException(e);
                }
            }, repo.readPool());
        } catch (java.util.concurrent.RejectedExecutionException e) {
            return CompletableFuture.failedFuture(new RepositoryException("repository " + repo.location() + " is closed", e));
        }
    }

    @Override
    public CompletableFuture<byte[]> readChunkAsync(long i) {
        try {
            return CompletableFuture.supplyAsync(() -> {
                try {
                    return readChunk(i);
                } catch (IOException e) {
                    throw new CompletionException(e);
                }
            }, repo.readPool());
        } catch (java.util.concurrent.RejectedExecutionException e) {
            return CompletableFuture.failedFuture(new RepositoryException("repository " + repo.location() + " is closed", e));
        }
    }

    @Override
    public List<AttachmentInfo> attachments() throws IOException {
        return index.attachments().stream().map(Attachments.Entry::info).toList();
    }

    @Override
    public byte[] readAttachment(String name) throws IOException {
        for (Attachments.Entry e : index.attachments()) {
            if (e.name().equals(name)) {
                return Attachments.read(reader, info.id(), info.chunkSize(), e);
            }
        }
        List<String> names = index.attachments().stream().map(Attachments.Entry::name).toList();
        throw new NotFoundException("backup " + info.id() + " has no attachment named " + name
            + (indexDamage == null ? "" : " (its index is damaged: " + indexDamage + ")")
            + (names.isEmpty() ? "; it has no attachments" : "; its attachments: " + String.join(", ", names)));
    }

    @Override
    public void close() {
        try {
            index.close();
        } catch (IOException ignored) {
            // read-only
        }
    }
}
