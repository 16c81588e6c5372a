package io.jbackup.nbd.client;

import io.jbackup.nbd.protocol.NbdCommand;
import io.jbackup.nbd.protocol.NbdConnectionClosedException;
import io.jbackup.nbd.protocol.NbdProtocolException;
import io.jbackup.nbd.protocol.NbdReply;
import io.jbackup.nbd.protocol.NbdRequest;
import io.jbackup.nbd.protocol.ReplyData;
import io.jbackup.nbd.protocol.ReplyDecoder;
import io.jbackup.text.Human;
import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.DecoderException;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.collection.LongObjectHashMap;
import io.netty.util.concurrent.ScheduledFuture;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * The transmission phase of one connection: sends requests (at most {@code maxInFlight} at a time, the rest
 * queued), matches every reply to its request by cookie, and fails everything on the first protocol error, early
 * EOF or request timeout. All state is confined to the channel's event loop.
 */
final class TransmissionHandler extends ChannelInboundHandlerAdapter implements ReplyDecoder.RequestLookup {
    private static final Logger LOG = LoggerFactory.getLogger(TransmissionHandler.class);

    private final String peer;
    private final long exportSize;
    private final boolean structured;
    private final int maxInFlight;
    private final long requestTimeoutNanos;

    private final LongObjectHashMap<Request> inFlight = new LongObjectHashMap<>();
    private final ArrayDeque<Request> pending = new ArrayDeque<>();
    private ChannelHandlerContext ctx;
    private long nextCookie = 1;
    private boolean flushScheduled;
    private IOException failure;
    private ScheduledFuture<?> timeoutCheck;
    // READ data being received: the request and the export offset of the data's first byte
    private Request dataTarget;
    private long dataBase;
    // graceful close
    private CompletableFuture<Void> closing;
    private volatile int peakInFlight;

    TransmissionHandler(String peer, long exportSize, boolean structured, int maxInFlight, long requestTimeoutNanos) {
        this.peer = peer;
        this.exportSize = exportSize;
        this.structured = structured;
        this.maxInFlight = maxInFlight;
        this.requestTimeoutNanos = requestTimeoutNanos;
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        this.ctx = ctx;
        long tick = Math.max(TimeUnit.MILLISECONDS.toNanos(10), Math.min(TimeUnit.SECONDS.toNanos(1),
            requestTimeoutNanos / 10));
        timeoutCheck = ctx.executor().scheduleAtFixedRate(this::checkTimeouts, tick, tick, TimeUnit.NANOSECONDS);
        if (!ctx.channel().isActive()) {
            fail(new NbdConnectionClosedException("server " + peer + " closed the connection right after the handshake"));
        }
    }

    @Override
    public void handlerRemoved(ChannelHandlerContext ctx) {
        cancelTimeoutCheck();
    }

    // ---- submission (event loop) ----

    void submit(Request r) {
        if (failure != null) {
            r.releasePayload();
            r.fail(failure);
        } else if (closing != null) {
            r.releasePayload();
            r.fail(new IOException("NBD client for " + peer + " is closing; " + r.describe() + " was not sent"));
        } else if (inFlight.size() < maxInFlight) {
            send(r);
        } else {
            pending.add(r);
        }
    }

    private void send(Request r) {
        r.cookie = nextCookie++;
        r.deadlineNanos = System.nanoTime() + requestTimeoutNanos;
        inFlight.put(r.cookie, r);
        if (inFlight.size() > peakInFlight) {
            peakInFlight = inFlight.size();
        }
        ByteBuf p = r.payload;
        r.payload = null;
        // a BLOCK_STATUS payload (extended headers) has its own length; the request's is the effect length
        long wireLength = p != null ? p.readableBytes() : r.length;
        ctx.write(new NbdRequest(r.flags, r.command, r.cookie, r.offset, wireLength, p), ctx.voidPromise());
        scheduleFlush();
    }

    private void scheduleFlush() {
        if (!flushScheduled) {
            flushScheduled = true;
            ctx.executor().execute(() -> {
                flushScheduled = false;
                ctx.flush();
            });
        }
    }

    private void drainPending() {
        while (failure == null && inFlight.size() < maxInFlight && !pending.isEmpty()) {
            send(pending.poll());
        }
        if (closing != null && inFlight.isEmpty() && pending.isEmpty()) {
            disconnect();
        }
    }

    // ---- replies (event loop) ----

    @Override
    public long simpleReplyDataLength(long cookie) throws NbdProtocolException {
        return lookup(cookie, "simple reply").simpleReplyDataLength(structured);
    }

    private Request lookup(long cookie, String what) throws NbdProtocolException {
        Request r = inFlight.get(cookie);
        if (r == null) {
            throw new NbdProtocolException(String.format("%s for unknown cookie 0x%x, expected one of %d in-flight "
                + "requests%s", what, cookie, inFlight.size(), inFlight.isEmpty() ? " (none in flight)" : ""));
        }
        return r;
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        try {
            if (failure != null) {
                return;
            }
            if (!(msg instanceof NbdReply reply)) {
                throw new NbdProtocolException("unexpected message in transmission phase: " + msg);
            }
            handle(reply);
        } catch (NbdProtocolException e) {
            fail(e);
        } finally {
            ReferenceCountUtil.release(msg);
        }
    }

    private void handle(NbdReply reply) throws NbdProtocolException {
        if (reply instanceof ReplyData d) {
            Request r = dataTarget;
            ByteBuf content = d.content();
            r.onData(dataBase + d.index(), content);
            if (d.last()) {
                dataTarget = null;
            }
            if (d.done()) {
                complete(r);
            }
            return;
        }
        if (reply instanceof NbdReply.Simple s) {
            Request r = lookup(s.cookie(), "simple reply");
            r.onSimple(s, structured);
            if (s.dataLength() > 0) {
                dataTarget = r;
                dataBase = r.offset;
            } else {
                complete(r);
            }
            return;
        }
        String chunkName = reply.getClass().getSimpleName();
        if (!structured) {
            throw new NbdProtocolException(String.format("server sent a structured reply chunk (%s, cookie 0x%x) "
                + "although structured replies were not negotiated", chunkName, reply.cookie()));
        }
        Request r = lookup(reply.cookie(), "structured reply chunk (" + chunkName + ")");
        if (reply instanceof NbdReply.OffsetData o) {
            r.onDataHeader(o.offset(), o.dataLength());
            dataTarget = r;
            dataBase = o.offset();
        } else if (reply instanceof NbdReply.OffsetHole h) {
            r.onHole(h);
        } else if (reply instanceof NbdReply.BlockStatus b) {
            r.onBlockStatus(b);
        } else if (reply instanceof NbdReply.Error e) {
            r.onError(e);
        } else if (!(reply instanceof NbdReply.None)) {
            throw new NbdProtocolException("unexpected reply " + reply);
        }
        if (reply.done()) {
            complete(r);
        }
    }

    private void complete(Request r) throws NbdProtocolException {
        inFlight.remove(r.cookie);
        r.finish(exportSize);
        if (r.serverShuttingDown() && closing == null) {
            LOG.warn("server {} is shutting down (ESHUTDOWN); disconnecting once the requests in flight are answered",
                peer);
            shutdown(requestTimeoutNanos);
        }
        drainPending();
    }

    // ---- failure ----

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        Throwable c = cause instanceof DecoderException && cause.getCause() != null ? cause.getCause() : cause;
        fail(c instanceof IOException io ? io
            : new NbdProtocolException("connection to " + peer + " failed: " + c, c));
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        // a decoder reports an EOF inside a message right after this event: let that more precise error win
        ctx.executor().execute(() -> connectionClosed(ctx));
        ctx.fireChannelInactive();
    }

    private void connectionClosed(ChannelHandlerContext ctx) {
        if (failure == null) {
            int n = inFlight.size() + pending.size();
            if (closing != null && n == 0) {
                failure = new IOException("NBD client for " + peer + " is closed");
            } else {
                String first = inFlight.isEmpty() ? "" : " (e.g. " + inFlight.values().iterator().next().describe()
                    + ")";
                fail(new NbdConnectionClosedException("server " + peer + " closed the connection" + (n == 0 ? ""
                    : " with " + Human.count(n, "request") + " unanswered" + first)));
            }
        }
        cancelTimeoutCheck();
        if (closing != null) {
            closing.complete(null);
        }
    }

    /** Fails every request, closes the channel; later submissions fail with the same cause. */
    void fail(IOException cause) {
        if (failure != null) {
            return;
        }
        failure = cause;
        int n = inFlight.size() + pending.size();
        if (n > 0) {
            LOG.debug("failing {} NBD request(s) to {}: {}", n, peer, cause.getMessage());
        }
        List<Request> all = new ArrayList<>(inFlight.values());
        all.addAll(pending);
        inFlight.clear();
        pending.clear();
        dataTarget = null;
        for (Request r : all) {
            r.releasePayload();
            r.fail(cause);
        }
        cancelTimeoutCheck();
        ctx.close();
    }

    private void checkTimeouts() {
        if (failure != null || inFlight.isEmpty()) {
            return;
        }
        long now = System.nanoTime();
        for (Map.Entry<Long, Request> e : inFlight.entrySet()) {
            Request r = e.getValue();
            if (now - r.deadlineNanos > 0) {
                fail(new NbdTimeoutException(String.format("no reply from %s to %s (cookie %s) within %d ms; closing "
                    + "the connection (%s in flight)", peer, r.describe(), r.cookieText(),
                    TimeUnit.NANOSECONDS.toMillis(requestTimeoutNanos), Human.count(inFlight.size(), "request"))));
                return;
            }
        }
    }

    private void cancelTimeoutCheck() {
        if (timeoutCheck != null) {
            timeoutCheck.cancel(false);
            timeoutCheck = null;
        }
    }

    // ---- close ----

    /**
     * Stops accepting requests, lets those already submitted finish, then sends {@code NBD_CMD_DISC} and closes.
     * Requests still unanswered after {@code graceNanos} fail. The future completes when the channel is closed.
     */
    CompletableFuture<Void> shutdown(long graceNanos) {
        if (closing != null) {
            return closing;
        }
        closing = new CompletableFuture<>();
        if (!ctx.channel().isActive()) {
            closing.complete(null);
            return closing;
        }
        if (failure != null || (inFlight.isEmpty() && pending.isEmpty())) {
            disconnect();
        } else {
            ctx.executor().schedule(() -> {
                if (ctx.channel().isActive()) {
                    fail(new IOException(String.format("NBD client for %s closed with %s unanswered",
                        peer, Human.count(inFlight.size() + pending.size(), "request"))));
                }
            }, graceNanos, TimeUnit.NANOSECONDS);
        }
        return closing;
    }

    private void disconnect() {
        if (failure == null && ctx.channel().isActive()) {
            failure = new IOException("NBD client for " + peer + " is closed");
            ctx.writeAndFlush(new NbdRequest(0, NbdCommand.DISC, nextCookie++, 0, 0, null))
                .addListener(f -> ctx.close());
        } else {
            ctx.close();
        }
    }

    // ---- introspection (event loop) ----

    int inFlightCount() {
        return inFlight.size();
    }

    /** Most requests ever in flight at once on this connection. */
    int peakInFlightForTest() {
        return peakInFlight;
    }
}
