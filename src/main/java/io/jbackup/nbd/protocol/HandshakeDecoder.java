package io.jbackup.nbd.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.ByteToMessageDecoder;
import io.netty.handler.codec.DecoderException;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * Client-side decoder for the handshake phase: the server greeting, then option replies, or the reply to
 * {@code NBD_OPT_EXPORT_NAME} once the client announced it with {@link #expectExportNameReply(boolean)}.
 *
 * <p>Wire formats (big-endian):
 * <pre>
 * greeting           NBDMAGIC(8) IHAVEOPT(8) handshake-flags(2)                     -&gt; {@link ServerGreeting}
 * option reply       0x0003e889045565a9(8) option(4) type(4) length(4) data(length)  -&gt; {@link OptionReply}
 * EXPORT_NAME reply  size(8) transmission-flags(2) [124 zero bytes unless NO_ZEROES] -&gt; {@link ExportNameReply}
 * </pre>
 *
 * <p>After the {@code ACK} to {@code NBD_OPT_GO} or the {@code EXPORT_NAME} reply the decoder stops consuming
 * input, so the client can replace it with the transmission decoder without losing bytes.
 *
 * <p>Every option reply length is checked against {@code maxReplyLength} before any of it is buffered, and every
 * string against the protocol's 4096-byte limit. A violation raises a {@link DecoderException} whose cause is an
 * {@link NbdProtocolException}, after which the decoder discards all input.
 */
public final class HandshakeDecoder extends ByteToMessageDecoder {
    /** Default bound on one option reply: a {@code NBD_REP_SERVER} with a maximal name and description. */
    public static final int DEFAULT_MAX_REPLY_LENGTH = 4 + 2 * NbdConstants.MAX_STRING_LENGTH + 1024;

    private static final long OLDSTYLE_MAGIC = 0x00420281861253L;
    private static final int GREETING_LENGTH = 18;
    private static final int OPTION_REPLY_HEADER_LENGTH = 20;

    private enum State {
        READ_GREETING,
        READ_OPTION_REPLY,
        READ_EXPORT_NAME_REPLY,
        /** Transmission starts: bytes are left for the decoder that replaces this one. */
        DONE,
        BAD_MESSAGE
    }

    private final int maxReplyLength;
    private State state = State.READ_GREETING;
    private boolean exportNameNoZeroes;

    public HandshakeDecoder() {
        this(DEFAULT_MAX_REPLY_LENGTH);
    }

    /** @param maxReplyLength the largest option reply data length accepted (at least 4096 + 4) */
    public HandshakeDecoder(int maxReplyLength) {
        if (maxReplyLength < NbdConstants.MAX_STRING_LENGTH + 4) {
            throw new IllegalArgumentException("maxReplyLength " + maxReplyLength + " must be at least "
                + (NbdConstants.MAX_STRING_LENGTH + 4));
        }
        this.maxReplyLength = maxReplyLength;
    }

    /**
     * Tells the decoder that the client sent {@code NBD_OPT_EXPORT_NAME}: the next bytes are its reply (10 bytes,
     * plus 124 zero bytes unless {@code noZeroes}). Call on the channel's event loop before writing the option.
     */
    public void expectExportNameReply(boolean noZeroes) {
        if (state != State.READ_OPTION_REPLY) {
            throw new IllegalStateException("EXPORT_NAME reply expected in state " + state);
        }
        exportNameNoZeroes = noZeroes;
        state = State.READ_EXPORT_NAME_REPLY;
    }

    @Override
    protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) throws Exception {
        try {
            switch (state) {
                case READ_GREETING -> decodeGreeting(in, out);
                case READ_OPTION_REPLY -> decodeOptionReply(in, out);
                case READ_EXPORT_NAME_REPLY -> decodeExportNameReply(in, out);
                case DONE -> {
                }
                case BAD_MESSAGE -> in.skipBytes(in.readableBytes());
                default -> throw new IllegalStateException(state.name());
            }
        } catch (NbdProtocolException e) {
            state = State.BAD_MESSAGE;
            in.skipBytes(in.readableBytes());
            throw new DecoderException(e);
        }
    }

    @Override
    protected void decodeLast(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) throws Exception {
        if (in.isReadable()) {
            decode(ctx, in, out);
        }
        if (in.isReadable() && state != State.BAD_MESSAGE && state != State.DONE) {
            int have = in.readableBytes();
            String where = describeState();
            state = State.BAD_MESSAGE;
            in.skipBytes(have);
            throw new DecoderException(new NbdConnectionClosedException("server closed the connection in the middle of "
                + where + " (" + have + " bytes of it received)"));
        }
    }

    private String describeState() {
        return switch (state) {
            case READ_GREETING -> "the greeting";
            case READ_OPTION_REPLY -> "an option reply";
            case READ_EXPORT_NAME_REPLY -> "the EXPORT_NAME reply";
            case DONE, BAD_MESSAGE -> "a bad message";
        };
    }

    private void decodeGreeting(ByteBuf in, List<Object> out) throws NbdProtocolException {
        if (in.readableBytes() < 8) {
            return;
        }
        long magic = in.getLong(in.readerIndex());
        if (magic != NbdConstants.NBDMAGIC) {
            throw new NbdProtocolException(String.format("bad greeting magic 0x%016x (expected NBDMAGIC "
                + "0x%016x): the peer is not an NBD server", magic, NbdConstants.NBDMAGIC));
        }
        if (in.readableBytes() < 16) {
            return;
        }
        long second = in.getLong(in.readerIndex() + 8);
        if (second == OLDSTYLE_MAGIC) {
            throw new NbdProtocolException("the server speaks the obsolete oldstyle NBD handshake; "
                + "jbackup needs a (fixed) newstyle server");
        }
        if (second != NbdConstants.IHAVEOPT) {
            throw new NbdProtocolException(String.format("bad greeting: expected IHAVEOPT 0x%016x after NBDMAGIC,"
                + " got 0x%016x", NbdConstants.IHAVEOPT, second));
        }
        if (in.readableBytes() < GREETING_LENGTH) {
            return;
        }
        in.skipBytes(16);
        int flags = in.readUnsignedShort();
        state = State.READ_OPTION_REPLY;
        out.add(new ServerGreeting(flags));
    }

    private void decodeExportNameReply(ByteBuf in, List<Object> out) {
        int need = exportNameNoZeroes ? 10 : 10 + 124;
        if (in.readableBytes() < need) {
            return;
        }
        long size = in.readLong();
        int flags = in.readUnsignedShort();
        in.skipBytes(need - 10);
        state = State.DONE;
        out.add(new ExportNameReply(size, flags, !exportNameNoZeroes));
    }

    private void decodeOptionReply(ByteBuf in, List<Object> out) throws NbdProtocolException {
        if (in.readableBytes() < 8) {
            return;
        }
        long magic = in.getLong(in.readerIndex());
        if (magic != NbdConstants.OPTION_REPLY_MAGIC) {
            throw new NbdProtocolException(String.format("bad option reply magic 0x%016x (expected 0x%016x)",
                magic, NbdConstants.OPTION_REPLY_MAGIC));
        }
        if (in.readableBytes() < OPTION_REPLY_HEADER_LENGTH) {
            return;
        }
        int base = in.readerIndex();
        NbdOption option = NbdOption.valueOf(in.getInt(base + 8));
        NbdOptionReplyType type = NbdOptionReplyType.valueOf(in.getInt(base + 12));
        long length = in.getUnsignedInt(base + 16);
        if (length > maxReplyLength) {
            throw new NbdProtocolException("option reply " + type + " to " + option + " announces " + length
                + " bytes of data; the limit is " + maxReplyLength);
        }
        if (in.readableBytes() < OPTION_REPLY_HEADER_LENGTH + length) {
            return;
        }
        in.skipBytes(OPTION_REPLY_HEADER_LENGTH);
        ByteBuf data = in.readSlice((int) length);
        OptionReply reply = parseReply(option, type, data);
        if (reply instanceof OptionReply.Ack && option.equals(NbdOption.GO)) {
            state = State.DONE;
        }
        out.add(reply);
    }

    private static OptionReply parseReply(NbdOption option, NbdOptionReplyType type, ByteBuf data)
        throws NbdProtocolException {
        int len = data.readableBytes();
        if (type.isError()) {
            return new OptionReply.Error(option, type, lenientString(data, Math.min(len, NbdConstants.MAX_STRING_LENGTH)));
        }
        if (type.equals(NbdOptionReplyType.ACK)) {
            return new OptionReply.Ack(option);
        }
        if (type.equals(NbdOptionReplyType.SERVER)) {
            if (len < 4) {
                throw new NbdProtocolException("NBD_REP_SERVER reply of " + len + " bytes is shorter than 4");
            }
            long nameLen = data.readUnsignedInt();
            if (nameLen > len - 4) {
                throw new NbdProtocolException("NBD_REP_SERVER name length " + nameLen + " exceeds the reply ("
                    + (len - 4) + " bytes left)");
            }
            String name = string(data, (int) nameLen, "export name in NBD_REP_SERVER");
            String details = lenientString(data, Math.min(data.readableBytes(), NbdConstants.MAX_STRING_LENGTH));
            return new OptionReply.Server(option, name, details);
        }
        if (type.equals(NbdOptionReplyType.META_CONTEXT)) {
            if (len < 5) {
                throw new NbdProtocolException("NBD_REP_META_CONTEXT reply of " + len + " bytes is shorter than 5");
            }
            int id = data.readInt();
            return new OptionReply.MetaContext(option, id, string(data, len - 4, "meta context name"));
        }
        if (type.equals(NbdOptionReplyType.INFO)) {
            return parseInfo(option, data);
        }
        return new OptionReply.Unknown(option, type, len);
    }

    private static OptionReply parseInfo(NbdOption option, ByteBuf data) throws NbdProtocolException {
        int len = data.readableBytes();
        if (len < 2) {
            throw new NbdProtocolException("NBD_REP_INFO reply of " + len + " bytes has no info type");
        }
        NbdInfoType info = NbdInfoType.valueOf(data.readUnsignedShort());
        if (info.equals(NbdInfoType.EXPORT)) {
            requireLength(info, len, 12);
            return new OptionReply.InfoExport(option, data.readLong(), data.readUnsignedShort());
        }
        if (info.equals(NbdInfoType.BLOCK_SIZE)) {
            requireLength(info, len, 14);
            return new OptionReply.InfoBlockSize(option, data.readUnsignedInt(), data.readUnsignedInt(),
                data.readUnsignedInt());
        }
        if (info.equals(NbdInfoType.NAME)) {
            return new OptionReply.InfoName(option, string(data, len - 2, "NBD_INFO_NAME"));
        }
        if (info.equals(NbdInfoType.DESCRIPTION)) {
            return new OptionReply.InfoDescription(option, lenientString(data, len - 2));
        }
        return new OptionReply.InfoUnknown(option, info, len);
    }

    private static void requireLength(NbdInfoType info, int len, int expected) throws NbdProtocolException {
        if (len != expected) {
            throw new NbdProtocolException("NBD_REP_INFO " + info + " has length " + len + "; it must be "
                + expected);
        }
    }

    /** A strict UTF-8 protocol string (names): at most 4096 bytes, valid UTF-8, no NUL. */
    private static String string(ByteBuf data, int len, String what) throws NbdProtocolException {
        if (len > NbdConstants.MAX_STRING_LENGTH) {
            throw new NbdProtocolException(what + " is " + len + " bytes long; NBD strings are at most "
                + NbdConstants.MAX_STRING_LENGTH);
        }
        ByteBuffer bytes = data.nioBuffer(data.readerIndex(), len);
        data.skipBytes(len);
        try {
            String s = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT).decode(bytes).toString();
            if (s.indexOf('\0') >= 0) {
                throw new NbdProtocolException(what + " contains a NUL character");
            }
            return s;
        } catch (CharacterCodingException e) {
            throw new NbdProtocolException(what + " is not valid UTF-8", e);
        }
    }

    /** A free-text string (messages, descriptions): invalid UTF-8 is replaced, never rejected. */
    private static String lenientString(ByteBuf data, int len) {
        String s = data.toString(data.readerIndex(), len, StandardCharsets.UTF_8);
        data.skipBytes(len);
        return s;
    }
}
