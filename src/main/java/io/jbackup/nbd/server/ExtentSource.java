package io.jbackup.nbd.server;

import io.jbackup.nbd.protocol.Extent;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * Answers {@code NBD_CMD_BLOCK_STATUS} for one meta context: the status of the bytes from {@code offset}.
 *
 * <p>The returned extents must be consecutive, start at {@code offset} and be non-empty; they may cover less than
 * {@code length} (the client asks again) or more (the server clips them). Flags are context specific: for
 * {@code base:allocation} {@code HOLE|ZERO} for zero regions and 0 for data; for {@code qemu:dirty-bitmap:*}
 * {@code 1} for dirty. The server merges adjacent extents with equal flags.
 */
@FunctionalInterface
public interface ExtentSource {
    CompletableFuture<List<Extent>> extents(long offset, long length);
}
