package io.jbackup.engine;

import java.io.IOException;

/** Where a restore writes: a file, a block device or an NBD export. Methods may be called from several threads. */
public interface RestoreTarget extends AutoCloseable {
    /** Writes {@code length} bytes of {@code data} at {@code offset}. */
    void write(long offset, byte[] data, int length) throws IOException;

    /** Makes [offset, offset+length) read as zeros (a hole, WRITE_ZEROES, TRIM or written zeros). */
    void writeZeroes(long offset, long length) throws IOException;

    /** Whether zero chunks must be written: false for a freshly created sparse file that already reads as zero. */
    boolean needsZeroes();

    /** Flushes to stable storage. */
    void flush() throws IOException;

    @Override
    void close() throws IOException;
}
