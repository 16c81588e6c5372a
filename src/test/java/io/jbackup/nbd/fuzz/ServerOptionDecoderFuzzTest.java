package io.jbackup.nbd.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.jbackup.nbd.protocol.ClientFlags;
import io.jbackup.nbd.protocol.OptionRequest;
import io.jbackup.nbd.protocol.OptionTooLong;
import io.jbackup.nbd.protocol.ServerOptionDecoder;
import io.netty.channel.embedded.EmbeddedChannel;
import org.junit.jupiter.api.Tag;

/**
 * Fuzzes the server's handshake decoder with what a hostile client sends: client flags, then options. The handler
 * is emulated: after each option it replies at once and resumes the decoder (config bit 0 set: it resumes only after
 * the whole piece was delivered, as when the reply comes from another thread). Options longer than the bound must be
 * reported as {@link OptionTooLong} and skipped, never buffered.
 */
@Tag("reliability")
class ServerOptionDecoderFuzzTest {
    static final int MAX_OPTION = 1024;

    @FuzzTest(maxDuration = "20s")
    void serverOptionDecoder(byte[] input) {
        boolean late = (Fuzzing.config(input) & 1) != 0;
        ServerOptionDecoder decoder = new ServerOptionDecoder(MAX_OPTION);
        EmbeddedChannel ch = new EmbeddedChannel(decoder);
        Throwable err = Fuzzing.feed(ch, Fuzzing.wire(input), Fuzzing.split(input), () -> {
            boolean more = true;
            while (more) {
                more = false;
                for (Object m; (m = ch.readInbound()) != null; ) {
                    try {
                        if (m instanceof OptionRequest o) {
                            if (o.data().length > MAX_OPTION) {
                                throw new AssertionError("option of " + o.data().length + " bytes");
                            }
                        } else if (m instanceof OptionTooLong t) {
                            if (t.length() <= MAX_OPTION) {
                                throw new AssertionError("OptionTooLong for " + t.length() + " bytes");
                            }
                        } else if (!(m instanceof ClientFlags)) {
                            throw new AssertionError("unexpected message " + m);
                        }
                    } finally {
                        io.netty.util.ReferenceCountUtil.release(m);
                    }
                    if (!late && decoder.isPaused()) {
                        decoder.resume();
                        ch.checkException();
                        more = true;
                    }
                }
                if (late && decoder.isPaused()) {
                    decoder.resume();
                    ch.checkException();
                    more = ch.inboundMessages().size() > 0;
                }
            }
        });
        // while paused the decoder holds what the client pipelined; a paused decoder is resumed above, so what
        // remains is at most one option header plus its (bounded) data
        if (err == null) {
            Fuzzing.requireBuffered(decoder, 16 + MAX_OPTION, "ServerOptionDecoder");
            Fuzzing.finish(ch);
        } else {
            ch.finishAndReleaseAll();
        }
    }
}
