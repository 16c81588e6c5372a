package io.jbackup.nbd.server;

import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdInfoType;
import io.jbackup.nbd.protocol.NbdOptionReplyType;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.DefaultByteBufHolder;
import io.netty.buffer.Unpooled;
import java.nio.charset.StandardCharsets;

/**
 * One fixed-newstyle option reply: {@code 0x3e889045565a9(8) option(4) reply-type(4) length(4) data}. The factory
 * methods build the data of each reply type. Encoded by {@link ServerOptionReplyEncoder}, which releases the data.
 */
public final class OptionReply extends DefaultByteBufHolder {
    private final int option;
    private final int replyType;

    public OptionReply(int option, int replyType, ByteBuf data) {
        super(data);
        this.option = option;
        this.replyType = replyType;
    }

    public int option() {
        return option;
    }

    public int replyType() {
        return replyType;
    }

    public NbdOptionReplyType type() {
        return NbdOptionReplyType.valueOf(replyType);
    }

    /** {@code NBD_REP_ACK} with no data. */
    public static OptionReply ack(int option) {
        return new OptionReply(option, NbdOptionReplyType.ACK.code(), Unpooled.EMPTY_BUFFER);
    }

    /** An error reply with a human-readable message (truncated to the protocol's 4096-byte string limit). */
    public static OptionReply error(int option, NbdOptionReplyType type, String message) {
        if (!type.isError()) {
            throw new IllegalArgumentException("not an error reply type: " + type);
        }
        return new OptionReply(option, type.code(), Unpooled.wrappedBuffer(utf8Limited(message)));
    }

    /** {@code NBD_REP_SERVER}: {@code name-length(4) name description} for {@code NBD_OPT_LIST}. */
    public static OptionReply server(int option, String name, String description) {
        byte[] n = utf8Limited(name);
        byte[] d = utf8Limited(description == null ? "" : description);
        ByteBuf b = Unpooled.buffer(4 + n.length + d.length);
        b.writeInt(n.length).writeBytes(n).writeBytes(d);
        return new OptionReply(option, NbdOptionReplyType.SERVER.code(), b);
    }

    /** {@code NBD_REP_INFO} with {@code NBD_INFO_EXPORT}: {@code type(2) size(8) transmission-flags(2)}. */
    public static OptionReply infoExport(int option, long size, int transmissionFlags) {
        ByteBuf b = Unpooled.buffer(12);
        b.writeShort(NbdInfoType.EXPORT.code()).writeLong(size).writeShort(transmissionFlags);
        return new OptionReply(option, NbdOptionReplyType.INFO.code(), b);
    }

    /** {@code NBD_REP_INFO} with {@code NBD_INFO_NAME} or {@code NBD_INFO_DESCRIPTION}: {@code type(2) string}. */
    public static OptionReply infoString(int option, NbdInfoType info, String value) {
        byte[] s = utf8Limited(value);
        ByteBuf b = Unpooled.buffer(2 + s.length);
        b.writeShort(info.code()).writeBytes(s);
        return new OptionReply(option, NbdOptionReplyType.INFO.code(), b);
    }

    /** {@code NBD_REP_INFO} with {@code NBD_INFO_BLOCK_SIZE}: {@code type(2) min(4) preferred(4) max-payload(4)}. */
    public static OptionReply infoBlockSize(int option, int minimum, int preferred, int maxPayload) {
        ByteBuf b = Unpooled.buffer(14);
        b.writeShort(NbdInfoType.BLOCK_SIZE.code()).writeInt(minimum).writeInt(preferred).writeInt(maxPayload);
        return new OptionReply(option, NbdOptionReplyType.INFO.code(), b);
    }

    /** {@code NBD_REP_META_CONTEXT}: {@code context-id(4) name}. */
    public static OptionReply metaContext(int option, int contextId, String name) {
        byte[] s = utf8Limited(name);
        ByteBuf b = Unpooled.buffer(4 + s.length);
        b.writeInt(contextId).writeBytes(s);
        return new OptionReply(option, NbdOptionReplyType.META_CONTEXT.code(), b);
    }

    /** UTF-8 bytes of {@code s}, cut (at a character boundary) to {@link NbdConstants#MAX_STRING_LENGTH}. */
    static byte[] utf8Limited(String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        if (b.length <= NbdConstants.MAX_STRING_LENGTH) {
            return b;
        }
        int end = NbdConstants.MAX_STRING_LENGTH;
        while (end > 0 && (b[end] & 0xC0) == 0x80) {
            end--;
        }
        return java.util.Arrays.copyOf(b, end);
    }

    @Override
    public String toString() {
        return "OptionReply(option=" + option + ", " + type() + ", " + content().readableBytes() + " bytes: "
            + ByteBufUtil.hexDump(content(), content().readerIndex(), Math.min(32, content().readableBytes())) + ")";
    }
}
