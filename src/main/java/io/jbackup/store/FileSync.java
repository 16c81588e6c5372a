package io.jbackup.store;

import io.jbackup.model.RepositoryException;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;

/** Durable file operations: write whole files atomically (temporary name, fsync, rename, fsync directory). */
final class FileSync {
    private FileSync() {
    }

    /** Fsyncs a directory so a rename or create inside it survives a power loss. */
    static void syncDir(Path dir) throws IOException {
        try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
            ch.force(true);
        }
    }

    /** Writes {@code data} to {@code file} atomically: {@code file.tmp}, fsync, rename over {@code file}, fsync dir. */
    static void writeAtomically(Path file, byte[] data) throws IOException {
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
            StandardOpenOption.TRUNCATE_EXISTING)) {
            ByteBuffer b = ByteBuffer.wrap(data);
            while (b.hasRemaining()) {
                ch.write(b);
            }
            ch.force(true);
        }
        rename(tmp, file);
    }

    /** Renames atomically and fsyncs the target directory. */
    static void rename(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            throw new RepositoryException("cannot rename " + from + " to " + to + " atomically; keep the repository "
                + "on one local file system", e);
        }
        syncDir(to.getParent());
    }

    /** Writes all of {@code b} at {@code pos}. */
    static void writeFully(FileChannel ch, ByteBuffer b, long pos) throws IOException {
        while (b.hasRemaining()) {
            pos += ch.write(b, pos);
        }
    }

    /** Reads exactly {@code b.remaining()} bytes at {@code pos}, or fails naming the file. */
    static void readFully(FileChannel ch, ByteBuffer b, long pos, Path file) throws IOException {
        while (b.hasRemaining()) {
            int n = ch.read(b, pos);
            if (n < 0) {
                throw new TruncatedObjectException(file + " ends at " + pos + " where " + b.remaining()
                    + " more bytes were expected; the file is truncated");
            }
            pos += n;
        }
    }

    /** Deletes a file tree, best effort for each entry. */
    static void deleteTree(Path root) throws IOException {
        if (!Files.exists(root)) {
            return;
        }
        try (var s = Files.walk(root)) {
            for (Path p : (Iterable<Path>) s.sorted(java.util.Comparator.reverseOrder())::iterator) {
                Files.deleteIfExists(p);
            }
        }
    }
}
