package io.jbackup.nbd.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Both sides speak one set of transmission types: what {@link RequestEncoder} writes, {@link ServerRequestDecoder}
 * reads back as equal {@link NbdRequest}s, and what {@link ServerReplyEncoder} writes, {@link ReplyDecoder} reads back
 * as equal {@link NbdReply} messages (READ data compared after joining its {@link ReplyData} pieces), for every
 * message kind in both header modes, the bytes fed to the decoder split at every position.
 */
class TransmissionRoundTripTest {
    static final int MAX = 4096;

    static ByteBuf bytes(int n, int seed) {
        ByteBuf b = Unpooled.buffer(n);
        for (int i = 0; i < n; i++) {
            b.writeByte(seed + 7 * i);
        }
        return b;
    }

    /** Decoded requests with their payloads copied, so they can be compared after the decoder's are released. */
    static final Function<List<Object>, List<Object>> COPY_REQUESTS = in -> {
        List<Object> out = new ArrayList<>();
        for (Object o : in) {
            NbdRequest r = (NbdRequest) o;
            out.add(new NbdRequest(r.flags(), r.command(), r.cookie(), r.offset(), r.length(),
                r.payload() == null ? null : Unpooled.copiedBuffer(r.payload()), r.payloadSkipped()));
            r.release();
        }
        return out;
    };

    /** The request as the server decodes it: with extended headers, a payload implies NBD_CMD_FLAG_PAYLOAD_LEN. */
    static NbdRequest asDecoded(NbdRequest r, NbdHeaderMode mode) {
        int flags = r.flags();
        if (mode == NbdHeaderMode.EXTENDED && r.payload() != null) {
            flags |= NbdConstants.CMD_FLAG_PAYLOAD_LEN;
        }
        return new NbdRequest(flags, r.command(), r.cookie(), r.offset(), r.length(),
            r.payload() == null ? null : Unpooled.copiedBuffer(r.payload()), false);
    }

    @ParameterizedTest
    @EnumSource(NbdHeaderMode.class)
    void everyRequestKindReadsBackEqual(NbdHeaderMode mode) {
        boolean ext = mode == NbdHeaderMode.EXTENDED;
        List<NbdRequest> sent = new ArrayList<>(List.of(
            new NbdRequest(NbdConstants.CMD_FLAG_DF, NbdCommand.READ, 1, 4096, 65536, null),
            new NbdRequest(NbdConstants.CMD_FLAG_FUA, NbdCommand.WRITE, 2, 512, 5, bytes(5, 1)),
            new NbdRequest(0, NbdCommand.WRITE, 3, 0, 0, Unpooled.buffer(0)),
            new NbdRequest(0, NbdCommand.FLUSH, 4, 0, 0, null),
            new NbdRequest(0, NbdCommand.TRIM, 5, 1L << 33, ext ? 5L << 32 : 0xffffffffL, null),
            new NbdRequest(0, NbdCommand.CACHE, 6, 0, 1 << 20, null),
            new NbdRequest(NbdConstants.CMD_FLAG_NO_HOLE, NbdCommand.WRITE_ZEROES, 7, 8192, 4096, null),
            new NbdRequest(NbdConstants.CMD_FLAG_REQ_ONE, NbdCommand.BLOCK_STATUS, -1L, -1L, 0xffffffffL, null),
            new NbdRequest(0, NbdCommand.valueOf(42), 8, 0, 0, null)));
        if (ext) {
            // BLOCK_STATUS_PAYLOAD: effect length(8) and the context ids(4) asked for
            sent.add(new NbdRequest(0, NbdCommand.BLOCK_STATUS, 9, 0, 16,
                Unpooled.buffer().writeLong(1L << 40).writeInt(1).writeInt(3)));
        }
        sent.add(new NbdRequest(0, NbdCommand.DISC, 10, 0, 0, null));
        List<Object> expected = new ArrayList<>();
        for (NbdRequest r : sent) {
            expected.add(asDecoded(r, mode));
        }
        byte[] wire = ExtendedHeadersCodecTest.encode(new EmbeddedChannel(RequestEncoder.of(mode)), sent.toArray());
        SplitFeeder.assertEverySplit(() -> new ServerRequestDecoder(mode, MAX, false, new RequestOffsets()), wire,
            expected, COPY_REQUESTS);
    }

    @ParameterizedTest
    @EnumSource(NbdHeaderMode.class)
    void refusedPayloadsReadBackAsSkippedAndTheStreamStaysInStep(NbdHeaderMode mode) {
        int p = mode == NbdHeaderMode.EXTENDED ? NbdConstants.CMD_FLAG_PAYLOAD_LEN : 0;
        byte[] wire = ExtendedHeadersCodecTest.encode(new EmbeddedChannel(RequestEncoder.of(mode)),
            new NbdRequest(0, NbdCommand.WRITE, 1, 0, MAX + 1, bytes(MAX + 1, 3)),
            new NbdRequest(0, NbdCommand.WRITE, 2, 512, 3, bytes(3, 5)),
            new NbdRequest(0, NbdCommand.FLUSH, 3, 0, 0, null));
        List<Object> writable = List.of(new NbdRequest(p, NbdCommand.WRITE, 1, 0, MAX + 1, null, true),
            new NbdRequest(p, NbdCommand.WRITE, 2, 512, 3, bytes(3, 5)), new NbdRequest(0, NbdCommand.FLUSH, 3, 0, 0,
                null));
        SplitFeeder.assertEverySplit(() -> new ServerRequestDecoder(mode, MAX, false, null), wire, writable,
            COPY_REQUESTS);
        List<Object> readOnly = List.of(writable.get(0), new NbdRequest(p, NbdCommand.WRITE, 2, 512, 3, null, true),
            writable.get(2));
        SplitFeeder.assertEverySplit(() -> new ServerRequestDecoder(mode, MAX, true, null), wire, readOnly,
            COPY_REQUESTS);
    }

    static ReplyData data(long cookie, long index, ByteBuf content, boolean last, boolean done) {
        return new ReplyData(cookie, index, content, last, done);
    }

    /** The replies of every kind a server sends with either header mode. */
    static List<NbdReply> chunks(NbdHeaderMode mode) {
        boolean ext = mode == NbdHeaderMode.EXTENDED;
        int done = NbdConstants.REPLY_FLAG_DONE;
        return List.of(
            new NbdReply.OffsetData(3, 0, 4096, 3), data(3, 0, bytes(3, 9), true, false),
            new NbdReply.OffsetHole(3, 0, 4099, 0xffffffffL),
            new NbdReply.OffsetData(3, 0, 1L << 40, 5), data(3, 0, bytes(2, 1), false, false),
            data(3, 2, bytes(3, 2), true, false),
            new NbdReply.OffsetData(3, done, 4611, 1), data(3, 0, bytes(1, 6), true, true),
            new NbdReply.BlockStatus(4, 0, 3, List.of(new NbdReply.BlockDescriptor(65536, 0),
                new NbdReply.BlockDescriptor(0xffffffffL, 0xffffffffL))),
            NbdReply.BlockStatus.of(4, done, 7, List.of(new Extent(0, ext ? 6L << 30 : 4096, 3))),
            new NbdReply.Error(5, 0, NbdError.EIO, "no"),
            new NbdReply.Error(5, 0, NbdReplyChunkType.ERROR_OFFSET, NbdError.EINVAL, "", 77),
            new NbdReply.Error(5, 0, NbdReplyChunkType.valueOf(0x8123), NbdError.ENOTSUP, "ü", -1),
            new NbdReply.Error(5, done, NbdError.valueOf(1000), "unknown value"),
            new NbdReply.None(5));
    }

    static void assertRepliesReadBackAs(NbdHeaderMode mode, RequestOffsets offsets, List<NbdReply> sent,
                                        List<Object> expected, Map<Long, Long> reads) {
        byte[] wire = ExtendedHeadersCodecTest.encode(new EmbeddedChannel(new ServerReplyEncoder(mode, offsets)),
            sent.toArray());
        SplitFeeder.assertEverySplit(() -> new ReplyDecoder(mode, 1 << 20, MAX, cookie -> reads.getOrDefault(cookie,
            0L)), wire, expected, ReplyCodecTest.MERGE);
    }

    @ParameterizedTest
    @EnumSource(NbdHeaderMode.class)
    void everyReplyChunkKindReadsBackEqual(NbdHeaderMode mode) {
        List<NbdReply> sent = chunks(mode);
        List<Object> expected = ReplyCodecTest.MERGE.apply(new ArrayList<>(sent));
        assertRepliesReadBackAs(mode, mode == NbdHeaderMode.EXTENDED ? new RequestOffsets() : null, sent, expected,
            Map.of());
    }

    @ParameterizedTest
    @EnumSource(NbdHeaderMode.class)
    void simpleRepliesReadBackEqualOrAsTheirExtendedChunks(NbdHeaderMode mode) {
        List<NbdReply> sent = List.of(
            new NbdReply.Simple(1, NbdError.OK),
            new NbdReply.Simple(2, NbdError.OK, 4), data(2, 0, bytes(4, 1), true, true),
            new NbdReply.Simple(2, NbdError.EIO),
            new NbdReply.Simple(6, NbdError.OK, 5), data(6, 0, bytes(1, 2), false, false),
            data(6, 1, bytes(4, 3), true, true),
            new NbdReply.Simple(1, NbdError.valueOf(1000)));
        List<Object> expected = ReplyCodecTest.MERGE.apply(new ArrayList<>(sent));
        RequestOffsets offsets = null;
        if (mode == NbdHeaderMode.EXTENDED) {
            // no simple replies: each is sent as the chunk that says the same, echoing its request's offset
            long[] at = {0, 4096, 8192, 1L << 40, 512};
            offsets = new RequestOffsets();
            int k = 0;
            for (int i = 0; i < expected.size(); i++) {
                if (expected.get(i) instanceof NbdReply.Simple s) {
                    offsets.put(s.cookie(), at[k]);
                    int done = NbdConstants.REPLY_FLAG_DONE;
                    expected.set(i, s.dataLength() > 0 ? new NbdReply.OffsetData(s.cookie(), done, at[k], s.dataLength())
                        : s.error().code() != 0 ? new NbdReply.Error(s.cookie(), done, s.error(), "")
                        : new NbdReply.None(s.cookie()));
                    k++;
                }
            }
            assertEquals(at.length, k);
        }
        assertRepliesReadBackAs(mode, offsets, sent, expected, Map.of(2L, 4L, 6L, 5L));
        if (offsets != null) {
            assertEquals(0, offsets.size(), "every final reply forgets its request's offset");
        }
    }
}
