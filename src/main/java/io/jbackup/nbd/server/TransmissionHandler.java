package io.jbackup.nbd.server;

import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdCommand;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdError;
import io.jbackup.nbd.protocol.NbdReply;
import io.jbackup.nbd.protocol.NbdRequest;
import io.jbackup.nbd.server.RequestRules.Refused;
import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.util.ReferenceCountUtil;
import java.io.IOException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The transmission phase of one connection: validates each {@link NbdRequest} (by the {@link RequestRules}),
 * runs it on the export, and writes its reply ({@link NbdReply} messages worded by {@link Replies}) when it
 * completes (replies may go out in any order).
 *
 * <p><b>Flow control.</b> A request holds a slot from the moment it starts until its reply has been written to
 * the socket. At most {@code maxInFlight} requests and {@code maxInFlightBytes} of READ/WRITE data hold slots;
 * decoded requests beyond that wait in a queue, and while anything waits (or the limits are reached) the channel
 * stops reading, so a client that floods requests or does not read replies cannot make the server buffer more
 * than the limits plus one socket read.
 *
 * <p><b>Disconnect.</b> After {@code NBD_CMD_DISC} no more requests are read; queued and in-flight ones complete,
 * then the connection closes. On server shutdown in-flight requests complete, queued and newly arriving ones fail
 * with {@code ESHUTDOWN}, and the connection closes as soon as nothing is in flight. The export is closed once the connection is gone and its last operation has finished.
 */
final class TransmissionHandler extends ChannelInboundHandlerAdapter {
    private static final Logger log = LoggerFactory.getLogger(TransmissionHandler.class);

    /** A selected meta context. */
    record Context(int id, String name, ExtentSource source) {
    }

    private final ServerContext server;
    private final NbdExport export;
    private final String peer;
    private final Replies replies;
    private final List<Context> contexts;
    private final int transmissionFlags;
    /** Checks each request before it runs (extended headers: 64-bit lengths, PAYLOAD_LEN on WRITE and BLOCK_STATUS). */
    private final RequestRules rules;
    private final int maxInFlight;
    private final long maxInFlightBytes;

    private final ArrayDeque<NbdRequest> queue = new ArrayDeque<>();
    private ChannelHandlerContext ctx;
    private int inFlight;
    private long inFlightBytes;
    private boolean disconnecting;
    private boolean shuttingDown;
    private boolean inactive;
    private boolean exportClosed;
    private boolean closeRequested;
    private boolean flushScheduled;
    private boolean pumping;
    private final Runnable flushTask = this::flushNow;

    TransmissionHandler(ServerContext server, NbdExport export, String peer, boolean structured, boolean extended,
                        List<Context> contexts, int transmissionFlags, int maxPayload) {
        this.server = server;
        this.export = export;
        this.peer = peer;
        this.replies = new Replies(structured);
        this.contexts = List.copyOf(contexts);
        this.transmissionFlags = transmissionFlags;
        this.rules = RequestRules.of(export, maxPayload, structured, extended);
        this.maxInFlight = server.config.maxInFlight();
        this.maxInFlightBytes = server.config.maxInFlightBytes();
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        this.ctx = ctx;
        if (!ctx.channel().isActive()) {
            inactive = true;
            maybeCloseExport();
        }
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (!(msg instanceof NbdRequest r)) {
            ReferenceCountUtil.release(msg);
            return;
        }
        if ((disconnecting && !shuttingDown) || inactive) {
            r.release();
            return;
        }
        if (r.command().equals(NbdCommand.DISC)) {
            log.debug("{}: NBD_CMD_DISC with {} in flight, {} queued", peer, inFlight, queue.size());
            disconnecting = true;
            updateReading();
            maybeFinish();
            return;
        }
        if (queue.isEmpty() && hasCapacity(r)) {
            start(r);
        } else {
            queue.add(r);
        }
        updateReading();
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        inactive = true;
        NbdRequest r;
        while ((r = queue.poll()) != null) {
            r.release();
        }
        if (inFlight > 0) {
            log.debug("{}: connection closed with {} requests in flight", peer, inFlight);
        }
        maybeCloseExport();
        ctx.fireChannelInactive();
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        if (cause instanceof IOException && !(cause instanceof io.jbackup.nbd.protocol.NbdProtocolException)) {
            log.debug("{}: connection error: {}", peer, cause.toString());
        } else {
            log.info("{}: closing connection: {}", peer, cause.toString());
            log.debug("{}: closing connection", peer, cause);
        }
        ctx.close();
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
        if (evt == NbdServer.SHUTDOWN_EVENT) {
            // keep reading: requests that arrive now are answered with ESHUTDOWN
            shuttingDown = true;
            disconnecting = true;
            updateReading();
            pump();
            maybeFinish();
        } else {
            ctx.fireUserEventTriggered(evt);
        }
    }

    // ---- flow control --------------------------------------------------------------------------------------

    private static long cost(NbdRequest r) {
        NbdCommand c = r.command();
        if (c.equals(NbdCommand.READ) || (c.equals(NbdCommand.WRITE) && !r.payloadSkipped())) {
            return Math.max(0, r.length());
        }
        return 0;
    }

    private boolean hasCapacity(NbdRequest r) {
        if (inFlight >= maxInFlight) {
            return false;
        }
        long c = cost(r);
        return inFlightBytes == 0 || c == 0 || inFlightBytes + c <= maxInFlightBytes;
    }

    private void updateReading() {
        if (inactive) {
            return;
        }
        boolean want = (!disconnecting || shuttingDown) && queue.isEmpty() && inFlight < maxInFlight && inFlightBytes < maxInFlightBytes;
        if (ctx.channel().config().isAutoRead() != want) {
            ctx.channel().config().setAutoRead(want);
        }
    }

    /** Starts queued requests while there is capacity; not re-entrant (a request may complete inside start). */
    private void pump() {
        if (pumping) {
            return;
        }
        pumping = true;
        try {
            while (!queue.isEmpty() && (shuttingDown || hasCapacity(queue.peek()))) {
                start(queue.poll());
            }
        } finally {
            pumping = false;
        }
    }

    /** Called once per started request, after its reply was written (or could not be). */
    private void finished(long cost) {
        inFlight--;
        inFlightBytes -= cost;
        if (inactive) {
            maybeCloseExport();
            return;
        }
        pump();
        updateReading();
        maybeFinish();
    }

    private void maybeFinish() {
        if (disconnecting && inFlight == 0 && queue.isEmpty() && !closeRequested && !inactive) {
            closeRequested = true;
            flushNow();
            ctx.close();
        }
    }

    private void maybeCloseExport() {
        if (inactive && inFlight == 0 && !exportClosed) {
            exportClosed = true;
            server.closeExport(export);
        }
    }

    private void scheduleFlush() {
        if (!flushScheduled) {
            flushScheduled = true;
            ctx.executor().execute(flushTask);
        }
    }

    private void flushNow() {
        flushScheduled = false;
        ctx.flush();
    }

    // ---- requests ------------------------------------------------------------------------------------------

    /** Starts {@code r}, then releases its payload (an operation that keeps it, a WRITE, retains it). */
    private void start(NbdRequest r) {
        long cost = cost(r);
        inFlight++;
        inFlightBytes += cost;
        if (shuttingDown) {
            r.release();
            replyError(r.cookie(), cost, NbdError.ESHUTDOWN, "server is shutting down");
            return;
        }
        try {
            dispatch(r, cost);
        } catch (Refused e) {
            log.debug("{}: {} refused: {} {}", peer, r, e.error, e.getMessage());
            replyError(r.cookie(), cost, e.error, e.getMessage());
        } catch (RuntimeException e) {
            log.warn("{}: {} failed: {}", peer, r, e.toString(), e);
            replyError(r.cookie(), cost, NbdError.EIO, e.toString());
        } finally {
            r.release();
        }
    }

    private void dispatch(NbdRequest r, long cost) throws Refused {
        NbdCommand cmd = r.command();
        rules.checkCommand(r);
        long offset = r.offset();
        long length = r.length();
        boolean fua = r.hasFlag(NbdConstants.CMD_FLAG_FUA);
        switch (cmd.name()) {
            case "READ" -> {
                rules.checkRead(r);
                if (length == 0) {
                    complete(r.cookie(), cost, replies.emptyRead(r.cookie()));
                    return;
                }
                boolean df = r.hasFlag(NbdConstants.CMD_FLAG_DF);
                whenDone(call(() -> export.read(offset, (int) length)), r.cookie(), cost,
                    result -> writeRead(r.cookie(), offset, (int) length, df, result, cost));
            }
            case "WRITE" -> {
                rules.checkWrite(r);
                if (length == 0) {
                    completeOk(r.cookie(), cost);
                    return;
                }
                // the export owns what it is given; start() releases the request's own reference
                ByteBuf data = r.payload().retain();
                whenDone(call(() -> export.write(offset, data, fua)), r.cookie(), cost, v -> completeOk(r.cookie(), cost));
            }
            case "FLUSH" -> {
                rules.checkFlush(r);
                whenDone(call(export::flush), r.cookie(), cost, v -> completeOk(r.cookie(), cost));
            }
            case "TRIM" -> {
                rules.checkWritable();
                rules.checkRange(r, NbdError.EINVAL);
                rules.checkAlignment(r);
                if (length == 0) {
                    completeOk(r.cookie(), cost);
                    return;
                }
                whenDone(call(() -> export.trim(offset, length)), r.cookie(), cost, v -> completeOk(r.cookie(), cost));
            }
            case "WRITE_ZEROES" -> {
                rules.checkWritable();
                rules.checkRange(r, NbdError.ENOSPC);
                rules.checkAlignment(r);
                if (length == 0) {
                    completeOk(r.cookie(), cost);
                    return;
                }
                whenDone(call(() -> export.writeZeroes(offset, length, fua)), r.cookie(), cost,
                    v -> completeOk(r.cookie(), cost));
            }
            case "CACHE" -> {
                rules.checkRange(r, NbdError.EINVAL);
                rules.checkAlignment(r);
                if (length == 0) {
                    completeOk(r.cookie(), cost);
                    return;
                }
                whenDone(call(() -> export.cache(offset, length)), r.cookie(), cost, v -> completeOk(r.cookie(), cost));
            }
            case "BLOCK_STATUS" -> blockStatus(r, cost);
            default -> throw new Refused(NbdError.EINVAL, "unsupported command " + cmd);
        }
    }

    private void blockStatus(NbdRequest r, long cost) throws Refused {
        RequestRules.BlockStatusQuery q = rules.checkBlockStatus(r, contexts);
        long offset = q.offset();
        List<Context> selected = q.contexts();
        long len = q.length();
        boolean reqOne = r.hasFlag(NbdConstants.CMD_FLAG_REQ_ONE);
        List<CompletableFuture<List<Extent>>> parts = new ArrayList<>(selected.size());
        for (Context c : selected) {
            parts.add(call(() -> c.source().extents(offset, len)));
        }
        CompletableFuture<List<NbdReply>> all = CompletableFuture.allOf(parts.toArray(new CompletableFuture<?>[0]))
            .thenApply(v -> Replies.blockStatus(r.cookie(), selected, parts.stream().map(CompletableFuture::join)
                .toList(), offset, len, reqOne));
        whenDone(all, r.cookie(), cost, chunks -> {
            ChannelFuture last = null;
            for (NbdReply c : chunks) {
                last = ctx.write(c);
            }
            afterWrite(last, cost);
        });
    }

    // ---- replies -------------------------------------------------------------------------------------------

    private void writeRead(long cookie, long offset, int length, boolean df, ReadResult result, long cost) {
        if (result.length() != length) {
            result.release();
            log.error("{}: export '{}' returned {} bytes for a read of {} at {}", peer, export.name(), result.length(),
                length, offset);
            replyError(cookie, cost, NbdError.EIO, "export returned " + result.length() + " bytes for a read of "
                + length);
            return;
        }
        afterWrite(replies.writeRead(ctx, cookie, offset, result, df), cost);
    }

    private void completeOk(long cookie, long cost) {
        complete(cookie, cost, replies.ok(cookie));
    }

    private void complete(long cookie, long cost, NbdReply reply) {
        if (inactive) {
            finished(cost);
            return;
        }
        afterWrite(ctx.write(reply), cost);
    }

    private void replyError(long cookie, long cost, NbdError error, String message) {
        complete(cookie, cost, replies.error(cookie, error, message));
    }

    private void afterWrite(ChannelFuture last, long cost) {
        scheduleFlush();
        if (last == null) {
            finished(cost);
        } else if (last.isDone()) {
            finished(cost);
        } else {
            last.addListener((ChannelFutureListener) f -> finished(cost));
        }
    }

    /** Calls an export operation, turning a synchronous exception into a failed future. */
    private static <T> CompletableFuture<T> call(java.util.function.Supplier<CompletableFuture<T>> op) {
        try {
            CompletableFuture<T> f = op.get();
            return f != null ? f : CompletableFuture.failedFuture(new IllegalStateException("export returned null"));
        } catch (RuntimeException e) {
            return CompletableFuture.failedFuture(e);
        }
    }

    /**
     * When {@code f} completes, runs {@code onSuccess} on the event loop, or replies with the mapped error. If the
     * connection is gone, releases a read result and just frees the slot.
     */
    private <T> void whenDone(CompletableFuture<T> f, long cookie, long cost, Consumer<T> onSuccess) {
        f.whenComplete((value, failure) -> {
            Runnable task = () -> {
                if (inactive) {
                    if (value instanceof ReadResult rr) {
                        rr.release();
                    }
                    finished(cost);
                } else if (failure != null) {
                    Throwable cause = unwrap(failure);
                    NbdError err = errorOf(cause);
                    if (err.equals(NbdError.EIO) && cause instanceof IOException) {
                        // the backing store failed and says where (a damaged chunk: pack, offset, backup); a kernel
                        // reading a mounted backup retries each read, and a stack trace each time buried that
                        log.warn("{}: export '{}' operation failed: {}", peer, export.name(), cause.toString());
                    } else if (err.equals(NbdError.EIO)) {
                        log.warn("{}: export '{}' operation failed: {}", peer, export.name(), cause.toString(), cause);
                    } else {
                        log.debug("{}: export '{}' operation failed: {} {}", peer, export.name(), err, cause.getMessage());
                    }
                    replyError(cookie, cost, err, messageOf(cause));
                } else {
                    try {
                        onSuccess.accept(value);
                    } catch (RuntimeException e) {
                        log.warn("{}: writing a reply failed: {}", peer, e.toString(), e);
                        replyError(cookie, cost, NbdError.EIO, e.toString());
                    }
                }
            };
            if (ctx.executor().inEventLoop()) {
                task.run();
            } else {
                try {
                    ctx.executor().execute(task);
                } catch (RuntimeException rejected) {
                    if (value instanceof ReadResult rr) {
                        rr.release();
                    }
                }
            }
        });
    }

    static Throwable unwrap(Throwable t) {
        while ((t instanceof CompletionException || t instanceof ExecutionException) && t.getCause() != null) {
            t = t.getCause();
        }
        return t;
    }

    static NbdError errorOf(Throwable t) {
        if (t instanceof NbdExportException e) {
            return e.error();
        }
        if (t instanceof IllegalArgumentException) {
            return NbdError.EINVAL;
        }
        if (t instanceof OutOfMemoryError) {
            return NbdError.ENOMEM;
        }
        return NbdError.EIO;
    }

    private static String messageOf(Throwable t) {
        return t.getMessage() != null ? t.getMessage() : t.getClass().getSimpleName();
    }
}
