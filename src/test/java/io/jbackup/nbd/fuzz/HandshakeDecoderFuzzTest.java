package io.jbackup.nbd.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.jbackup.nbd.protocol.ExportNameReply;
import io.jbackup.nbd.protocol.HandshakeDecoder;
import io.jbackup.nbd.protocol.OptionReply;
import io.jbackup.nbd.protocol.ServerGreeting;
import io.netty.channel.embedded.EmbeddedChannel;
import org.junit.jupiter.api.Tag;

/**
 * Fuzzes the client's handshake decoder with what a hostile server sends: greeting, option replies, and (config
 * bit 0) the {@code NBD_OPT_EXPORT_NAME} reply the client announces right after the greeting, with or without the
 * 124 zero bytes (bit 1). The option reply bound is the smallest the decoder accepts, so long inputs hit it.
 */
@Tag("reliability")
class HandshakeDecoderFuzzTest {
    static final int MAX_REPLY = 4096 + 4;

    @FuzzTest(maxDuration = "20s")
    void handshakeDecoder(byte[] input) {
        int config = Fuzzing.config(input);
        HandshakeDecoder decoder = new HandshakeDecoder(MAX_REPLY);
        EmbeddedChannel ch = new EmbeddedChannel(decoder);
        Throwable err = Fuzzing.feed(ch, Fuzzing.wire(input), Fuzzing.split(input), () -> {
            Fuzzing.drain(ch, m -> {
                if (m instanceof ServerGreeting) {
                    if ((config & 1) != 0) {
                        try {
                            decoder.expectExportNameReply((config & 2) != 0);
                        } catch (IllegalStateException unsolicited) {
                            // the server sent a final reply (GO's ACK) with the greeting, before any option: the
                            // client's Handshake turns this into an NbdProtocolException and disconnects
                            ch.close();
                        }
                    }
                } else if (!(m instanceof OptionReply) && !(m instanceof io.jbackup.nbd.protocol.ExportNameReply)) {
                    throw new AssertionError("unexpected message " + m);
                }
            });
            Fuzzing.requireBuffered(decoder, 20 + MAX_REPLY, "HandshakeDecoder");
        });
        if (err == null) {
            Fuzzing.finish(ch);
        } else {
            ch.finishAndReleaseAll();
        }
    }
}
