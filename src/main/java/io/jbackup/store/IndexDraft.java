package io.jbackup.store;

import io.jbackup.model.RepositoryException;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.function.Supplier;

import static io.jbackup.store.IndexFile.FLAG_KEYED;
import static io.jbackup.store.IndexFile.IO_BLOCK;
import static io.jbackup.store.IndexFile.MAGIC;
import static io.jbackup.store.IndexFile.MAX_METADATA;
import static io.jbackup.store.IndexFile.PREAMBLE_SIZE;
import static io.jbackup.store.IndexFile.VERSION;
import static io.jbackup.store.IndexFile.entryOffset;

/**
 * An index being written under a temporary name. Entry writes are thread-safe (positional). The file starts
 * sparse, and zero entries are written only into blocks of {@value IndexFile#IO_BLOCK} entry bytes that may hold a
 * non-zero entry: runs of zero chunks cost no writes and leave holes (work per run, not per chunk).
 */
final class IndexDraft implements Closeable {
    final Path tmp;
    final long chunkCount;
    final int chunkSize;
    private final FileChannel ch;
    /** One bit per block of entry bytes, set before any non-zero entry is written into that block. */
    private final java.util.concurrent.atomic.AtomicLongArray touched;
    /** Zero entries for {@link #putZeros} (never written to). */
    private static final byte[] ZERO_BLOCK = new byte[IO_BLOCK];

    IndexDraft(Path tmp, long chunkCount, int chunkSize) throws IOException {
        this.tmp = tmp;
        this.chunkCount = chunkCount;
        this.chunkSize = chunkSize;
        this.ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.READ,
            StandardOpenOption.WRITE);
        // sparse: every entry reads as the zero digest until written
        FileSync.writeFully(ch, ByteBuffer.allocate(PREAMBLE_SIZE), 0);
        if (chunkCount > 0) {
            FileSync.writeFully(ch, ByteBuffer.allocate(1), entryOffset(chunkCount) - 1);
        }
        long blocks = (chunkCount * ChunkId.LENGTH + IO_BLOCK - 1) / IO_BLOCK;
        this.touched = new java.util.concurrent.atomic.AtomicLongArray((int) ((blocks + 63) / 64));
    }

    private static long blockOf(long index) {
        return index * ChunkId.LENGTH / IO_BLOCK;
    }

    private void touch(long block) {
        int i = (int) (block >>> 6);
        long bit = 1L << (block & 63);
        if ((touched.get(i) & bit) == 0) {
            touched.getAndAccumulate(i, bit, (a, b) -> a | b);
        }
    }

    private boolean isTouched(long block) {
        return (touched.get((int) (block >>> 6)) & (1L << (block & 63))) != 0;
    }

    /** Copies every entry of {@code parent} (same chunk count), checking the parent's entries MAC on the way. */
    void copyFrom(IndexReader parent) throws IOException {
        if (parent.chunkCount() != chunkCount) {
            throw new IllegalArgumentException("parent has " + parent.chunkCount() + " chunks, not " + chunkCount);
        }
        parent.forEachBlock((first, buf, len) -> {
            // blocks of zero entries stay holes
            if (java.util.Arrays.mismatch(buf, 0, len, ZERO_BLOCK, 0, len) >= 0) {
                for (long b = blockOf(first); b <= blockOf(first + len / ChunkId.LENGTH - 1); b++) {
                    touch(b);
                }
                FileSync.writeFully(ch, ByteBuffer.wrap(buf, 0, len), entryOffset(first));
            }
        });
    }

    /** Sets the digest at {@code index}. */
    void put(long index, byte[] digest) throws IOException {
        long block = blockOf(index);
        if (!isTouched(block)) {
            if (ChunkId.isZeroDigest(digest)) {
                return; // the entry is still a hole
            }
            touch(block);
        }
        FileSync.writeFully(ch, ByteBuffer.wrap(digest, 0, ChunkId.LENGTH), entryOffset(index));
    }

    /** Sets the zero digest at {@code count} positions from {@code first}, a block of entries per write. */
    void putZeros(long first, long count) throws IOException {
        long pos = first * ChunkId.LENGTH; // relative to the first entry
        long end = (first + count) * ChunkId.LENGTH;
        while (pos < end) {
            long block = pos / IO_BLOCK;
            long stop = Math.min(end, (block + 1) * IO_BLOCK);
            if (isTouched(block)) {
                FileSync.writeFully(ch, ByteBuffer.wrap(ZERO_BLOCK, 0, (int) (stop - pos)), PREAMBLE_SIZE + pos);
            }
            pos = stop;
        }
    }

    /** Reads the digest at {@code index} back (tests and diagnostics). */
    byte[] get(long index) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(ChunkId.LENGTH);
        FileSync.readFully(ch, b, entryOffset(index), tmp);
        return b.array();
    }

    /** Writes the entries MAC, metadata, preamble and file MAC, then fsyncs. The file is then ready to rename. */
    void finish(byte[] metadata, Supplier<MetaMac> macs) throws IOException {
        if (metadata.length > MAX_METADATA) {
            throw new RepositoryException("backup metadata is " + metadata.length + " bytes (at most " + MAX_METADATA
                + "): shorten the labels or the note");
        }
        MetaMac entriesMac = macs.get();
        ByteBuffer buf = ByteBuffer.allocate((int) Math.min(IO_BLOCK, Math.max(ChunkId.LENGTH,
            chunkCount * ChunkId.LENGTH)));
        long end = entryOffset(chunkCount);
        for (long pos = entryOffset(0); pos < end; ) {
            buf.clear().limit((int) Math.min(buf.capacity(), end - pos));
            FileSync.readFully(ch, buf, pos, tmp);
            buf.flip();
            pos += buf.remaining();
            entriesMac.update(buf);
        }
        MetaMac fileMac = macs.get();
        ByteBuffer pre = ByteBuffer.allocate(PREAMBLE_SIZE);
        pre.putLong(MAGIC).putInt(VERSION).putInt(fileMac.keyed() ? FLAG_KEYED : 0).putLong(chunkCount)
            .putInt(chunkSize).putInt(metadata.length).put(entriesMac.finish());
        byte[] preamble = pre.array();
        fileMac.update(preamble).update(metadata);
        FileSync.writeFully(ch, ByteBuffer.wrap(metadata), end);
        FileSync.writeFully(ch, ByteBuffer.wrap(fileMac.finish()), end + metadata.length);
        FileSync.writeFully(ch, ByteBuffer.wrap(preamble), 0);
        ch.force(true);
    }

    @Override
    public void close() throws IOException {
        ch.close();
    }

    /** Closes and deletes the temporary file. */
    void delete() {
        try {
            ch.close();
            Files.deleteIfExists(tmp);
        } catch (IOException ignored) {
            // best effort: the tmp directory is cleaned when its owner is gone
        }
    }
}

