package io.jbackup.nbd.client;

import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdCommand;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdHeaderMode;
import io.jbackup.nbd.protocol.ReplyDecoder;
import io.netty.channel.embedded.EmbeddedChannel;

import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * The client's transmission pipeline as a connection builds it ({@link ReplyDecoder} in front of the
 * {@link TransmissionHandler} that owns the in-flight table), on an {@link EmbeddedChannel}, for tests that feed it
 * a hostile server's bytes (the fuzz targets in {@code io.jbackup.nbd.fuzz}). Requests are submitted as
 * {@link NbdClient} does; cookies are 1, 2, ... in submission order.
 */
public final class ClientReplyHarness {
    private final EmbeddedChannel channel;
    private final ReplyDecoder decoder;
    private final TransmissionHandler handler;
    private final Map<Integer, String> contexts;

    public ClientReplyHarness(long exportSize, boolean structured, Map<Integer, String> contexts, long maxData,
                              int maxMetadata) {
        this(exportSize, NbdHeaderMode.COMPACT, structured, contexts, maxData, maxMetadata);
    }

    /** With {@link NbdHeaderMode#EXTENDED} reply chunks are allowed whatever {@code structured} says. */
    public ClientReplyHarness(long exportSize, NbdHeaderMode mode, boolean structured, Map<Integer, String> contexts,
                              long maxData, int maxMetadata) {
        this.contexts = Map.copyOf(contexts);
        handler = new TransmissionHandler("fuzz", exportSize, structured || mode == NbdHeaderMode.EXTENDED, 64,
            TimeUnit.HOURS.toNanos(1));
        decoder = new ReplyDecoder(mode, maxData, maxMetadata, handler);
        channel = new EmbeddedChannel(decoder, handler);
    }

    public EmbeddedChannel channel() {
        return channel;
    }

    public ReplyDecoder decoder() {
        return decoder;
    }

    /** Submits a READ of {@code length} bytes at {@code offset} into a fresh array. */
    public CompletableFuture<Void> read(long offset, int length) {
        CompletableFuture<Void> f = new CompletableFuture<>();
        handler.submit(new Request.Read(offset, new byte[length], 0, length, f, null));
        channel.runPendingTasks();
        return f;
    }

    /** Submits a READ of {@code dst.length} bytes at {@code offset} into {@code dst}, reporting pieces to {@code o}. */
    public CompletableFuture<Void> read(long offset, byte[] dst, ReadObserver o) {
        CompletableFuture<Void> f = new CompletableFuture<>();
        handler.submit(new Request.Read(offset, dst, 0, dst.length, f, o));
        channel.runPendingTasks();
        return f;
    }

    /** Submits a BLOCK_STATUS for every context given to the constructor. */
    public CompletableFuture<Map<String, List<Extent>>> blockStatus(long offset, long length, boolean reqOne) {
        CompletableFuture<Map<String, List<Extent>>> f = new CompletableFuture<>();
        handler.submit(new Request.BlockStatus(offset, length, reqOne ? NbdConstants.CMD_FLAG_REQ_ONE : 0, contexts,
            null,
            f));
        channel.runPendingTasks();
        return f;
    }

    /** Submits a FLUSH. */
    public CompletableFuture<Void> flush() {
        CompletableFuture<Void> f = new CompletableFuture<>();
        handler.submit(new Request.Plain(NbdCommand.FLUSH, 0, 0, 0, null, f));
        channel.runPendingTasks();
        return f;
    }

    /** Requests still waiting for their reply. */
    public int inFlight() {
        return handler.inFlightCount();
    }
}
