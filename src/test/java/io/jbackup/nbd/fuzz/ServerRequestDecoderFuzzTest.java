package io.jbackup.nbd.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.jbackup.nbd.protocol.NbdCommand;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdHeaderMode;
import io.jbackup.nbd.protocol.NbdRequest;
import io.jbackup.nbd.protocol.RequestOffsets;
import io.jbackup.nbd.protocol.ServerRequestDecoder;
import io.netty.buffer.ByteBuf;
import io.netty.channel.embedded.EmbeddedChannel;
import org.junit.jupiter.api.Tag;

import java.util.ArrayList;
import java.util.List;

/**
 * Fuzzes the server's transmission decoder with what a hostile client sends: request headers and WRITE payloads,
 * for a writable export (config bit 0 clear) or a read-only one (set: every WRITE payload is skipped), with compact
 * headers (bit 1 clear) or extended ones (set: 32-byte headers, a payload iff {@code NBD_CMD_FLAG_PAYLOAD_LEN}). A
 * payload over the bound must be flagged and skipped, never buffered; every request but DISC has its offset recorded
 * for the extended replies; every buffer the decoder allocated is released in the end, whatever the input.
 */
@Tag("reliability")
class ServerRequestDecoderFuzzTest {
    static final int MAX_PAYLOAD = 512;

    @FuzzTest(maxDuration = "20s")
    void serverRequestDecoder(byte[] input) {
        boolean readOnly = (Fuzzing.config(input) & 1) != 0;
        boolean extended = (Fuzzing.config(input) & 2) != 0;
        RequestOffsets offsets = new RequestOffsets();
        ServerRequestDecoder decoder = new ServerRequestDecoder(extended ? NbdHeaderMode.EXTENDED
            : NbdHeaderMode.COMPACT, MAX_PAYLOAD, readOnly, offsets);
        EmbeddedChannel ch = new EmbeddedChannel(decoder);
        // every buffer the decoder allocates (its cumulation) must be released in the end, whatever the input
        List<ByteBuf> allocated = new ArrayList<>();
        ch.config().setAllocator(Fuzzing.tracking(allocated));
        Throwable err = Fuzzing.feed(ch, Fuzzing.wire(input), Fuzzing.split(input), () -> {
            for (Object m; (m = ch.readInbound()) != null; ) {
                if (!(m instanceof NbdRequest r)) {
                    throw new AssertionError("unexpected message " + m);
                }
                try {
                    boolean write = r.command().equals(NbdCommand.WRITE);
                    boolean carries = extended ? r.hasFlag(NbdConstants.CMD_FLAG_PAYLOAD_LEN) : write;
                    if (r.payloadSkipped() && (!carries || (!(readOnly && write) && r.length() <= MAX_PAYLOAD))) {
                        throw new AssertionError("payload of " + r.length() + " bytes skipped wrongly");
                    }
                    if (carries && !r.payloadSkipped() && (r.length() > MAX_PAYLOAD || r.length() < 0
                        || r.payload() == null || r.payload().readableBytes() != r.length())) {
                        throw new AssertionError("payload of " + r.length() + " bytes buffered wrongly");
                    }
                    if (!r.command().equals(NbdCommand.DISC) && offsets.offset(r.cookie(), true) != r.offset()) {
                        throw new AssertionError("offset of " + r + " not recorded");
                    }
                } finally {
                    r.release();
                }
            }
            Fuzzing.requireBuffered(decoder, 32 + MAX_PAYLOAD,
                "ServerRequestDecoder");
        });
        if (err == null) {
            Fuzzing.finish(ch);
        } else {
            // the requests decoded before the error are still queued: their payloads are slices of the cumulation
            Fuzzing.drain(ch, m -> { });
            ch.finishAndReleaseAll();
        }
        for (ByteBuf b : allocated) {
            if (b.refCnt() != 0) {
                throw new AssertionError("a buffer of " + b.capacity() + " bytes was left unreleased (refCnt "
                    + b.refCnt() + ")" + (err == null ? "" : " after " + err));
            }
        }
    }
}
