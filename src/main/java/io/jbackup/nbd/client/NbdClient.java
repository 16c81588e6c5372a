package io.jbackup.nbd.client;

import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdCommand;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdHeaderMode;
import io.jbackup.nbd.protocol.OptionReply;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

/**
 * An NBD client for one export: fixed newstyle handshake (TLS, extended headers or structured replies, meta
 * contexts, {@code GO} with {@code EXPORT_NAME} fallback), then pipelined, asynchronous commands over one or more connections.
 *
 * <p>Every command returns a {@link CompletableFuture}. Large calls are split into requests of at most
 * {@link ClientOptions#maxRequestSize()} bytes (and never more than the server's maximum payload), sent with up to
 * {@link ClientOptions#maxInFlight()} requests in flight per connection, and completed when every part has been
 * answered. When the server advertises {@code CAN_MULTI_CONN}, up to {@link ClientOptions#connections()} connections
 * are opened and requests go to the least busy one.
 *
 * <p>Threading: methods may be called from any thread. Futures complete on an I/O thread: do not block in a
 * dependent stage (use the {@code *Async} variants for heavy work). Arrays passed to {@link #read} and
 * {@link #write} must not be touched until the future completes.
 *
 * <p>Failures: {@link NbdCommandException} when the server failed a command (the connection stays usable);
 * {@link io.jbackup.nbd.protocol.NbdProtocolException} when the server broke the protocol, and
 * {@link NbdTimeoutException} when it did not answer in time (both end the connection and fail every request on it).
 * Invalid arguments (out of range, misaligned writes, a command the server does not support) throw
 * {@link IllegalArgumentException} or {@link IllegalStateException} immediately.
 */
public final class NbdClient implements AutoCloseable {
    /** Largest length of one payload-free request (TRIM, WRITE_ZEROES, CACHE, BLOCK_STATUS). */
    private static final long MAX_EFFECT_LENGTH = 1L << 30;
    /**
     * Largest length of one BLOCK_STATUS request: the protocol's 32-bit length, kept a multiple of 1 MiB so windows
     * end on chunk boundaries. Big windows keep an empty disk to a few requests per TiB.
     */
    public static final long MAX_STATUS_LENGTH = (1L << 32) - (1L << 20);

    private final NbdUri uri;
    private final ClientOptions opts;
    private final ExportInfo info;
    private final boolean structured;
    private final NbdHeaderMode mode;
    private final Map<String, Integer> metaContexts;
    private final List<String> offeredBitmaps;
    private final Connections connections;
    private final int requestSize;
    private final Set<CompletableFuture<Void>> outstandingWrites = ConcurrentHashMap.newKeySet();
    private volatile boolean closed;

    private NbdClient(NbdUri uri, ClientOptions opts, Connections connections) {
        Handshake.Negotiated first = connections.first;
        this.uri = uri;
        this.opts = opts;
        this.info = first.info();
        this.structured = first.structured();
        this.mode = first.mode();
        Map<String, Integer> m = new LinkedHashMap<>();
        first.contexts().forEach((id, name) -> m.put(name, id));
        this.metaContexts = Collections.unmodifiableMap(m);
        this.offeredBitmaps = first.offeredBitmaps();
        this.connections = connections;
        int size = Math.min(opts.maxRequestSize(), info.maxBlock());
        size -= size % info.minBlock();
        this.requestSize = Math.max(size, info.minBlock());
    }

    /**
     * Stops the I/O threads that every client of this process shares, so that the JVM exits at once: call it only
     * when the process is about to exit (no client can connect afterwards).
     */
    public static void stopSharedThreads() {
        Transports.shutdown();
    }

    /**
     * Creates the I/O thread group that every client of this process shares (its threads start with the first
     * connection), so that a command's first connect does not wait for it; for start-up work on a second thread.
     */
    public static void prepareSharedThreads() {
        Transports.group();
    }

    /**
     * Connects to the export: STARTTLS (as configured), {@code EXTENDED_HEADERS} (else {@code STRUCTURED_REPLY}),
     * {@code SET_META_CONTEXT} for {@link ClientOptions#metaContexts()}, {@code GO} (or {@code EXPORT_NAME}); then,
     * if the server advertises {@code CAN_MULTI_CONN}, further connections up to {@link ClientOptions#connections()}.
     */
    public static NbdClient connect(NbdUri uri, ClientOptions opts) throws IOException {
        Objects.requireNonNull(uri, "uri");
        Objects.requireNonNull(opts, "opts");
        return new NbdClient(uri, opts, Connections.open(uri, opts));
    }

    /** {@code NBD_OPT_LIST}, then {@code NBD_OPT_INFO} for each export; ends with {@code NBD_OPT_ABORT}. */
    public static List<ExportInfo> listExports(NbdUri uri, ClientOptions opts) throws IOException {
        Handshake h = Handshake.start(uri, opts);
        try {
            ExportQueries q = h.queries();
            List<OptionReply.Server> names = q.list();
            List<ExportInfo> out = new ArrayList<>(names.size());
            for (OptionReply.Server s : names) {
                ExportInfo i = q.info(s.name(), s.details());
                out.add(i != null ? i : new ExportInfo(s.name(), s.details(), -1, 0, ExportInfo.DEFAULT_MIN_BLOCK,
                    ExportInfo.DEFAULT_PREFERRED_BLOCK, ExportInfo.DEFAULT_MAX_BLOCK));
            }
            return out;
        } finally {
            h.abort();
        }
    }

    /**
     * {@code NBD_OPT_LIST_META_CONTEXT} for the URI's export: the contexts matching each query (all contexts when no
     * query is given; {@code "qemu:dirty-bitmap:"} lists qemu's bitmaps). Names are returned once, in the server's
     * order. Empty if the server has no structured replies or meta contexts.
     */
    public static List<String> listMetaContexts(NbdUri uri, ClientOptions opts, String... queries)
        throws IOException {
        Handshake h = Handshake.start(uri, opts);
        try {
            h.requireFixedNewstyle("list meta contexts");
            if (!h.negotiateStructuredReplies()) {
                return List.of();
            }
            Set<String> names = new LinkedHashSet<>(h.queries().listMetaContexts(List.of(queries)));
            return List.copyOf(names);
        } finally {
            h.abort();
        }
    }

    public NbdUri uri() {
        return uri;
    }

    public ExportInfo info() {
        return info;
    }

    /**
     * When a {@code qemu:dirty-bitmap:NAME} context was asked for and the server did not grant it: the names of the
     * bitmaps the export offers, listed during this connection's handshake. Empty otherwise (or when the server
     * offers none, or refused the listing).
     */
    public List<String> offeredBitmaps() {
        return offeredBitmaps;
    }

    /** Negotiated meta contexts: name to id on the first connection (only those the server selected). */
    public Map<String, Integer> metaContexts() {
        return metaContexts;
    }

    public boolean structuredReplies() {
        return structured;
    }

    /** The header mode negotiated: {@link NbdHeaderMode#EXTENDED} when the server took extended headers. */
    public NbdHeaderMode headerMode() {
        return mode;
    }

    /**
     * Largest length of one BLOCK_STATUS request on this connection: the export size with extended headers (one
     * 64-bit request can cover it; the server answers as much as it wants), else {@link #MAX_STATUS_LENGTH}.
     */
    public long maxStatusLength() {
        return mode == NbdHeaderMode.EXTENDED ? Math.max(info.size(), 1) : MAX_STATUS_LENGTH;
    }

    /** Number of open connections. */
    public int connectionCount() {
        return connections.alive();
    }

    /** The size of the pieces large reads and writes are split into. */
    public int requestSize() {
        return requestSize;
    }

    List<Connection> connectionsForTest() {
        return connections.all();
    }

    // ---- commands ----

    /**
     * Reads {@code length} bytes at {@code offset} into {@code dst[dstOffset..]}. Any length: the read is split and
     * pipelined; holes are zero-filled; a range not aligned to the server's minimum block size is widened internally.
     */
    public CompletableFuture<Void> read(long offset, byte[] dst, int dstOffset, int length) {
        return read(offset, dst, dstOffset, length, null);
    }

    /**
     * As {@link #read(long, byte[], int, int)}, telling {@code observer} (when not null) about each piece of
     * {@code dst} as it becomes final (see {@link ReadObserver}).
     */
    public CompletableFuture<Void> read(long offset, byte[] dst, int dstOffset, int length, ReadObserver observer) {
        Objects.checkFromIndexSize(dstOffset, length, dst.length);
        checkRange(offset, length);
        if (length == 0) {
            return CompletableFuture.completedFuture(null);
        }
        long min = info.minBlock();
        long start = offset - offset % min;
        long end = offset + length;
        long alignedEnd = end % min == 0 ? end : Math.min(end - end % min + min, info.size());
        if (start != offset || alignedEnd != end) {
            if (alignedEnd - start > Integer.MAX_VALUE) {
                throw new IllegalArgumentException("read of " + length + " bytes is too large to align");
            }
            byte[] tmp = new byte[(int) (alignedEnd - start)];
            return read(start, tmp, 0, tmp.length).thenRun(() -> {
                System.arraycopy(tmp, (int) (offset - start), dst, dstOffset, length);
                if (observer != null) {
                    observer.received(dstOffset, length);
                }
            });
        }
        List<Request> parts = new ArrayList<>();
        List<CompletableFuture<Void>> futures = new ArrayList<>();
        for (long pos = offset; pos < end; pos += requestSize) {
            int n = (int) Math.min(requestSize, end - pos);
            CompletableFuture<Void> f = new CompletableFuture<>();
            parts.add(new Request.Read(pos, dst, dstOffset + (int) (pos - offset), n, f, observer));
            futures.add(f);
        }
        return dispatch(parts, futures);
    }

    /**
     * {@code NBD_CMD_BLOCK_STATUS} for every negotiated meta context in one request. The result maps each context name
     * to its extents: contiguous from {@code offset}, non-empty, clipped to the export size; they may cover less or
     * (the last one) more than {@code length}. With {@code reqOne} each context has exactly one extent, no longer than
     * the request. A reply that breaks these rules (descriptors past the requested end, a zero-length one, several or
     * a longer one with {@code reqOne}, more than 2^20 descriptors in one chunk, {@link
     * io.jbackup.nbd.protocol.ReplyDecoder#DEFAULT_MAX_METADATA_PAYLOAD}) fails with {@link
     * io.jbackup.nbd.protocol.NbdProtocolException} and ends the connection.
     */
    public CompletableFuture<Map<String, List<Extent>>> blockStatus(long offset, long length, boolean reqOne) {
        return blockStatus(offset, length, reqOne, metaContexts.keySet());
    }

    /**
     * As {@link #blockStatus(long, long, boolean)}, for the negotiated contexts in {@code wanted} only. With extended
     * headers and {@code NBD_FLAG_BLOCK_STATUS_PAYLOAD} the request names just those (the server computes no
     * others); otherwise all are asked and the others dropped from the result.
     *
     * @throws IllegalArgumentException if {@code wanted} names no negotiated context
     */
    public CompletableFuture<Map<String, List<Extent>>> blockStatus(long offset, long length, boolean reqOne,
                                                                    java.util.Collection<String> wanted) {
        if (!structured || metaContexts.isEmpty()) {
            throw new IllegalStateException("no meta context was negotiated with " + uri + " (requested: "
                + opts.metaContexts() + (structured ? "" : "; the server has no structured replies")
                + "); block status is not available");
        }
        if (length <= 0) {
            throw new IllegalArgumentException("block status length must be positive, got " + length);
        }
        checkRange(offset, Math.min(length, 1));
        checkAligned(offset, 0, "block status");
        long len = Math.min(length, Math.min(info.size() - offset, maxStatusLength()));
        if (len % info.minBlock() != 0 && offset + len < info.size()) {
            len -= len % info.minBlock();
        }
        Set<String> names = new LinkedHashSet<>(wanted);
        names.retainAll(metaContexts.keySet());
        if (names.isEmpty()) {
            throw new IllegalArgumentException("none of the meta contexts " + wanted + " was negotiated with " + uri
                + " (negotiated: " + metaContexts.keySet() + ")");
        }
        Connection c = connections.pick();
        Map<Integer, String> asked = c.contexts;
        ByteBuf payload = null;
        int flags = reqOne ? NbdConstants.CMD_FLAG_REQ_ONE : 0;
        if (names.size() < c.contexts.size() && mode == NbdHeaderMode.EXTENDED && info.canBlockStatusPayload()) {
            asked = new LinkedHashMap<>();
            payload = Unpooled.buffer(8 + 4 * names.size()).writeLong(len);
            for (Map.Entry<Integer, String> e : c.contexts.entrySet()) {
                if (names.contains(e.getValue())) {
                    asked.put(e.getKey(), e.getValue());
                    payload.writeInt(e.getKey());
                }
            }
        }
        CompletableFuture<Map<String, List<Extent>>> f = new CompletableFuture<>();
        Request r = new Request.BlockStatus(offset, len, flags, asked, payload, f);
        c.submit(List.of(r), List.of(f));
        if (asked.size() == names.size()) {
            return f;
        }
        return f.thenApply(m -> {
            Map<String, List<Extent>> out = new HashMap<>(m);
            out.keySet().retainAll(names);
            return out;
        });
    }

    /**
     * Writes {@code length} bytes from {@code src[srcOffset..]} at {@code offset}, split at the request size;
     * {@code fua} asks the server to persist before replying. Offset and length must be aligned to the minimum block.
     */
    public CompletableFuture<Void> write(long offset, byte[] src, int srcOffset, int length, boolean fua) {
        Objects.checkFromIndexSize(srcOffset, length, src.length);
        return write(offset, Unpooled.wrappedBuffer(src, srcOffset, length), fua);
    }

    /**
     * Writes {@code src}'s readable bytes at {@code offset}, split at the request size, without copying them: takes
     * over {@code src}'s reference (released once the requests are sent, or when this fails). Offset and length must
     * be aligned to the minimum block.
     */
    public CompletableFuture<Void> write(long offset, ByteBuf src, boolean fua) {
        int length = src.readableBytes();
        try {
            checkRange(offset, length);
            checkAligned(offset, length, "write");
            if (fua) {
                require(info.canFua(), "FUA");
            }
        } catch (RuntimeException e) {
            src.release();
            throw e;
        }
        if (length == 0) {
            src.release();
            return CompletableFuture.completedFuture(null);
        }
        List<Request> parts = new ArrayList<>();
        List<CompletableFuture<Void>> futures = new ArrayList<>();
        long end = offset + length;
        int base = src.readerIndex();
        for (long pos = offset; pos < end; pos += requestSize) {
            int n = (int) Math.min(requestSize, end - pos);
            CompletableFuture<Void> f = new CompletableFuture<>();
            parts.add(new Request.Plain(NbdCommand.WRITE, fua ? NbdConstants.CMD_FLAG_FUA : 0, pos, n,
                src.retainedSlice(base + (int) (pos - offset), n), f));
            futures.add(f);
        }
        src.release();
        return trackWrite(dispatch(parts, futures));
    }

    /** {@code NBD_CMD_WRITE_ZEROES}; {@code noHole} asks the server to allocate rather than punch a hole. */
    public CompletableFuture<Void> writeZeroes(long offset, long length, boolean noHole) {
        require(info.canWriteZeroes(), "WRITE_ZEROES");
        return trackWrite(effect(NbdCommand.WRITE_ZEROES, noHole ? NbdConstants.CMD_FLAG_NO_HOLE : 0, offset,
            length));
    }

    /** {@code NBD_CMD_TRIM}: the server may discard the range; its contents are undefined afterwards. */
    public CompletableFuture<Void> trim(long offset, long length) {
        require(info.canTrim(), "TRIM");
        return trackWrite(effect(NbdCommand.TRIM, 0, offset, length));
    }

    /** {@code NBD_CMD_CACHE}: advisory prefetch. */
    public CompletableFuture<Void> cache(long offset, long length) {
        require(info.canCache(), "CACHE");
        return effect(NbdCommand.CACHE, 0, offset, length);
    }

    /**
     * {@code NBD_CMD_FLUSH}, sent once every write, write-zeroes and trim submitted before this call has been
     * answered (required with several connections, and makes the flush cover them on one connection too).
     */
    public CompletableFuture<Void> flush() {
        require(info.canFlush(), "FLUSH");
        checkOpen();
        CompletableFuture<?>[] before = outstandingWrites.toArray(new CompletableFuture<?>[0]);
        return CompletableFuture.allOf(before).handle((v, e) -> null).thenCompose(v -> {
            CompletableFuture<Void> f = new CompletableFuture<>();
            Connection c = connections.pick();
            c.submit(List.of(new Request.Plain(NbdCommand.FLUSH, 0, 0, 0, null, f)), List.of(f));
            return f;
        });
    }

    private CompletableFuture<Void> effect(NbdCommand cmd, int flags, long offset, long length) {
        checkRange(offset, length);
        checkAligned(offset, length, cmd.name());
        if (length == 0) {
            return CompletableFuture.completedFuture(null);
        }
        long step = MAX_EFFECT_LENGTH - MAX_EFFECT_LENGTH % info.minBlock();
        List<Request> parts = new ArrayList<>();
        List<CompletableFuture<Void>> futures = new ArrayList<>();
        for (long pos = offset; pos < offset + length; pos += step) {
            long n = Math.min(step, offset + length - pos);
            CompletableFuture<Void> f = new CompletableFuture<>();
            parts.add(new Request.Plain(cmd, flags, pos, n, null, f));
            futures.add(f);
        }
        return dispatch(parts, futures);
    }

    private CompletableFuture<Void> trackWrite(CompletableFuture<Void> f) {
        outstandingWrites.add(f);
        f.whenComplete((v, e) -> outstandingWrites.remove(f));
        return f;
    }
    /** Sends the parts over the connections and completes the result when every part has been answered. */
    private CompletableFuture<Void> dispatch(List<Request> parts, List<CompletableFuture<Void>> futures) {
        checkOpen();
        return connections.dispatch(parts, futures);
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("NBD client for " + uri + " is closed");
        }
    }

    private void checkRange(long offset, long length) {
        if (offset < 0 || length < 0 || offset > info.size() || length > info.size() - offset) {
            throw new IllegalArgumentException("range [" + offset + ", " + (offset + length) + ") is outside the "
                + "export (size " + info.size() + ")");
        }
    }

    private void checkAligned(long offset, long length, String what) {
        long min = info.minBlock();
        if (offset % min != 0 || (length % min != 0 && offset + length != info.size())) {
            throw new IllegalArgumentException(what + " at offset " + offset + " length " + length + " is not aligned "
                + "to the server's minimum block size " + min);
        }
    }

    private void require(boolean flag, String what) {
        if (!flag) {
            throw new IllegalStateException("server " + uri + " does not support " + what + " on this export "
                + "(transmission flags " + info.flagNames() + ")");
        }
    }

    /**
     * Waits (up to {@code min(requestTimeout, 10 s)}) for submitted requests, sends {@code NBD_CMD_DISC} and closes
     * every connection. Requests still unanswered then fail. Called from a completion callback (an I/O thread) it
     * starts the same sequence without waiting for it.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        long grace = Math.min(opts.requestTimeout().toNanos(), TimeUnit.SECONDS.toNanos(10));
        connections.close(uri, grace);
    }

    @Override
    public String toString() {
        return "NbdClient[" + uri + ", " + connections.all().size() + " connection(s)]";
    }
}
