package io.jbackup.nbd.server;

import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdError;
import io.netty.buffer.ByteBuf;
import java.io.IOException;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/**
 * A block device served by {@link NbdServer}.
 *
 * <p>The server validates every request before calling an operation: ranges lie within {@link #size()}, are
 * aligned to {@link #minBlockSize()} (except a final partial block), reads and writes are at most
 * {@link #maxPayload()} bytes, and writes never reach a {@link #readOnly()} export. Operations are asynchronous
 * and may complete on any thread; the server may have many in flight at once (also from several connections if
 * the provider shares an instance), and must not be blocked by them: do blocking I/O on an executor, not in the
 * calling thread (the calling thread is a network event loop).
 *
 * <p>Errors: complete the future exceptionally with an {@link NbdExportException} to choose the NBD error; any
 * other exception is reported as {@code EIO} with its message.
 */
public interface NbdExport extends AutoCloseable {
    /** The canonical export name. */
    String name();

    /** Human-readable description (NBD_INFO_DESCRIPTION and NBD_OPT_LIST). */
    default String description() {
        return "";
    }

    /** Size in bytes. */
    long size();

    /** True if every write must fail with EPERM. */
    boolean readOnly();

    /**
     * True if several connections may use this export at once and see each other's flushed writes (advertised as
     * {@code NBD_FLAG_CAN_MULTI_CONN}). Safe for read-only exports and for writable ones whose instances share all
     * state and caches.
     */
    default boolean canMultiConn() {
        return readOnly();
    }

    /** Minimum block size (power of two, 1..65536): requests must be aligned to it. */
    default int minBlockSize() {
        return 1;
    }

    /** Preferred block size (power of two, at least max(512, minimum)). */
    default int preferredBlockSize() {
        return 4096;
    }

    /** Largest READ/WRITE payload accepted (at least the preferred block size). */
    default int maxPayload() {
        return 32 << 20;
    }

    /** Reads {@code [offset, offset+length)}; the result must cover exactly that range. */
    CompletableFuture<ReadResult> read(long offset, int length);

    /**
     * {@code base:allocation} status from {@code offset}: {@code HOLE|ZERO} for regions that read as zero, 0 for
     * data (see {@link ExtentSource} for the rules). The default reports everything as data.
     */
    default CompletableFuture<List<Extent>> allocation(long offset, long length) {
        return CompletableFuture.completedFuture(List.of(new Extent(offset, length, 0)));
    }

    /**
     * Additional meta contexts by full name ({@code namespace:leaf}, for example {@code qemu:dirty-bitmap:b1}),
     * offered by {@code NBD_OPT_LIST_META_CONTEXT} and selectable with {@code NBD_OPT_SET_META_CONTEXT}.
     * {@code base:allocation} is always offered and answered by {@link #allocation}.
     */
    default Map<String, ExtentSource> metaContexts() {
        return Map.of();
    }

    /** Writes {@code data} (ownership passes to the export, which releases it) at {@code offset}. */
    default CompletableFuture<Void> write(long offset, ByteBuf data, boolean fua) {
        data.release();
        return readOnlyFailure();
    }

    /** Makes {@code [offset, offset+length)} read as zeroes. */
    default CompletableFuture<Void> writeZeroes(long offset, long length, boolean fua) {
        return readOnlyFailure();
    }

    /** Discards {@code [offset, offset+length)}: its contents are undefined until rewritten. */
    default CompletableFuture<Void> trim(long offset, long length) {
        return readOnlyFailure();
    }

    /** Makes every completed write durable. */
    default CompletableFuture<Void> flush() {
        return CompletableFuture.completedFuture(null);
    }

    /** Advisory prefetch of a range. */
    default CompletableFuture<Void> cache(long offset, long length) {
        return CompletableFuture.completedFuture(null);
    }

    /** Releases this instance. Called once, after its last operation has completed. */
    @Override
    default void close() throws IOException {
    }

    private static CompletableFuture<Void> readOnlyFailure() {
        return CompletableFuture.failedFuture(new NbdExportException(NbdError.EPERM, "export is read-only"));
    }
}
