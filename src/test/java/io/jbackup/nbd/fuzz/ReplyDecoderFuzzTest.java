package io.jbackup.nbd.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.jbackup.nbd.client.ClientReplyHarness;
import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdHeaderMode;
import io.jbackup.nbd.protocol.NbdProtocolException;
import io.netty.handler.codec.DecoderException;
import org.junit.jupiter.api.Tag;

import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;

/**
 * Fuzzes the client's reply path with what a hostile server sends in transmission: the {@code ReplyDecoder} in
 * front of the connection's in-flight table, with requests registered as the client registers them.
 *
 * <p>Config bits: 0 structured replies negotiated; 1 block status with {@code REQ_ONE}; 2 a second meta context
 * (a dirty bitmap, id 1) besides {@code base:allocation} (id 0); 3 extended headers negotiated (32-byte reply
 * headers, {@code BLOCK_STATUS_EXT}; bit 0 then does not matter). In flight, cookies in order: 1 READ [0, 4096),
 * 2 READ [4096, 4608), 3 BLOCK_STATUS [0, 65536), 4 FLUSH, 5 READ of the export's last 512 bytes (export 1 MiB).
 *
 * <p>Invariants, besides those of {@link Fuzzing}: every request ends (completes or fails) once the connection
 * closes; failures are {@link IOException}s (protocol errors, command errors, connection closed) without any other
 * runtime exception inside; a READ that succeeds was covered exactly (checked by the client); a block status that
 * succeeds has, per context, non-empty, contiguous extents from the request offset inside the export (what the
 * backup engine relies on). The decoder never buffers more than a chunk header plus the metadata bound.
 */
@Tag("reliability")
class ReplyDecoderFuzzTest {
    static final long EXPORT_SIZE = 1 << 20;
    static final int MAX_DATA = 4096;
    static final int MAX_METADATA = 256;

    @FuzzTest(maxDuration = "20s")
    void replyDecoder(byte[] input) throws Exception {
        int config = Fuzzing.config(input);
        boolean structured = (config & 1) != 0;
        boolean reqOne = (config & 2) != 0;
        Map<Integer, String> contexts = new LinkedHashMap<>();
        contexts.put(0, NbdConstants.CONTEXT_BASE_ALLOCATION);
        if ((config & 4) != 0) {
            contexts.put(1, NbdConstants.CONTEXT_DIRTY_BITMAP_PREFIX + "b0");
        }
        NbdHeaderMode mode = (config & 8) != 0 ? NbdHeaderMode.EXTENDED : NbdHeaderMode.COMPACT;
        ClientReplyHarness h = new ClientReplyHarness(EXPORT_SIZE, mode, structured, contexts, MAX_DATA,
            MAX_METADATA);
        List<CompletableFuture<?>> all = new ArrayList<>();
        all.add(h.read(0, 4096));
        all.add(h.read(4096, 512));
        CompletableFuture<Map<String, List<Extent>>> status = h.blockStatus(0, 65536, reqOne);
        all.add(status);
        all.add(h.flush());
        all.add(h.read(EXPORT_SIZE - 512, 512));
        Fuzzing.drain(h.channel(), m -> { });

        Throwable err = Fuzzing.feed(h.channel(), Fuzzing.wire(input), Fuzzing.split(input), () -> {
            Fuzzing.drain(h.channel(), m -> { });
            Fuzzing.requireBuffered(h.decoder(), (mode == NbdHeaderMode.EXTENDED ? 32 : 20) + MAX_METADATA,
                "ReplyDecoder");
        });
        if (err != null) {
            throw new AssertionError("a decoder error escaped the client's handler: " + err, err);
        }
        h.channel().finish();
        h.channel().runPendingTasks();
        h.channel().checkException();
        Fuzzing.drain(h.channel(), m -> { });

        for (CompletableFuture<?> f : all) {
            if (!f.isDone()) {
                throw new AssertionError("a request never ended after the connection closed");
            }
            if (f.isCompletedExceptionally()) {
                try {
                    f.get();
                } catch (ExecutionException e) {
                    requireCleanFailure(e.getCause());
                }
            }
        }
        if (status.isDone() && !status.isCompletedExceptionally()) {
            checkExtents(status.get(), contexts, reqOne);
        }
    }

    /** An IOException whose causes are protocol errors only: no IndexOutOfBounds, no IllegalArgument, ... */
    static void requireCleanFailure(Throwable t) {
        if (!(t instanceof IOException)) {
            throw new AssertionError("request failed with " + t, t);
        }
        for (Throwable c = t.getCause(); c != null; c = c.getCause()) {
            if (!(c instanceof IOException) && !(c instanceof DecoderException
                && c.getCause() instanceof NbdProtocolException)) {
                throw new AssertionError("request failed with " + t + " caused by " + c, t);
            }
        }
    }

    static void checkExtents(Map<String, List<Extent>> result, Map<Integer, String> contexts, boolean reqOne) {
        if (!result.keySet().equals(new java.util.HashSet<>(contexts.values()))) {
            throw new AssertionError("block status for " + result.keySet() + ", negotiated " + contexts.values());
        }
        for (Map.Entry<String, List<Extent>> e : result.entrySet()) {
            List<Extent> list = e.getValue();
            if (list.isEmpty() || (reqOne && list.size() != 1)) {
                throw new AssertionError(list.size() + " extents for " + e.getKey());
            }
            long pos = 0;
            for (Extent x : list) {
                if (x.offset() != pos || x.length() <= 0 || x.end() > EXPORT_SIZE) {
                    throw new AssertionError("extent " + x + " at position " + pos + " for " + e.getKey() + ": "
                        + list);
                }
                pos = x.end();
            }
            if (reqOne && pos > 65536) {
                throw new AssertionError("REQ_ONE extent longer than the request: " + list);
            }
        }
    }
}
