package io.jbackup.nbd.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.jbackup.nbd.protocol.NbdCommand;
import io.jbackup.nbd.protocol.ServerRequest;
import io.jbackup.nbd.protocol.ServerRequestDecoder;
import io.netty.channel.embedded.EmbeddedChannel;
import org.junit.jupiter.api.Tag;

/**
 * Fuzzes the server's transmission decoder with what a hostile client sends: request headers and WRITE payloads,
 * for a writable export (config bit 0 clear) or a read-only one (set: every payload is skipped). A payload over the
 * bound must be flagged and skipped, never buffered.
 */
@Tag("reliability")
class ServerRequestDecoderFuzzTest {
    static final int MAX_PAYLOAD = 512;

    @FuzzTest(maxDuration = "20s")
    void serverRequestDecoder(byte[] input) {
        boolean readOnly = (Fuzzing.config(input) & 1) != 0;
        ServerRequestDecoder decoder = new ServerRequestDecoder(MAX_PAYLOAD, readOnly);
        EmbeddedChannel ch = new EmbeddedChannel(decoder);
        Throwable err = Fuzzing.feed(ch, Fuzzing.wire(input), Fuzzing.split(input), () -> {
            for (Object m; (m = ch.readInbound()) != null; ) {
                if (!(m instanceof ServerRequest r)) {
                    throw new AssertionError("unexpected message " + m);
                }
                try {
                    boolean write = r.type() == NbdCommand.WRITE.code();
                    if (r.payloadSkipped() && (!write || (!readOnly && r.length() <= MAX_PAYLOAD))) {
                        throw new AssertionError("payload of " + r.length() + " bytes skipped wrongly");
                    }
                    if (write && !r.payloadSkipped() && r.length() > MAX_PAYLOAD) {
                        throw new AssertionError("payload of " + r.length() + " bytes buffered");
                    }
                } finally {
                    r.release();
                }
            }
            Fuzzing.requireBuffered(decoder, ServerRequestDecoder.HEADER_LENGTH + MAX_PAYLOAD,
                "ServerRequestDecoder");
        });
        if (err == null) {
            Fuzzing.finish(ch);
        } else {
            ch.finishAndReleaseAll();
        }
    }
}
