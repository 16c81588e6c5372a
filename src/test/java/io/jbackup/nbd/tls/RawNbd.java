package io.jbackup.nbd.tls;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jbackup.nbd.protocol.NbdCommand;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdOption;
import io.jbackup.nbd.protocol.NbdOptionReplyType;
import io.netty.bootstrap.Bootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandler;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.socket.nio.NioDomainSocketChannel;

import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.ExecutionException;

/**
 * Just enough NBD (fixed newstyle, simple replies) to prove TLS works against a real server: greeting, client
 * flags, NBD_OPT_STARTTLS, NBD_OPT_GO, NBD_CMD_READ, NBD_CMD_DISC. Test-only; the real client lives in nbd.client.
 */
final class RawNbd implements AutoCloseable {
    private static final int MAX_OPTION_REPLY = 64 * 1024;

    final Channel ch;
    final Probe probe = new Probe();
    private long cookie = 1;

    record OptionReply(int option, int type, byte[] data) {
    }

    private RawNbd(EventLoopGroup group, Path socket) {
        ch = new Bootstrap().group(group).channel(NioDomainSocketChannel.class).handler(probe)
            .connect(UnixDomainSocketAddress.of(socket)).syncUninterruptibly().channel();
    }

    static RawNbd connect(EventLoopGroup group, Path socket) {
        return new RawNbd(group, socket);
    }

    /** Reads the greeting and answers with FIXED_NEWSTYLE|NO_ZEROES. */
    RawNbd handshake() {
        ByteBuffer g = ByteBuffer.wrap(probe.read(18));
        assertEquals(NbdConstants.NBDMAGIC, g.getLong(), "NBDMAGIC");
        assertEquals(NbdConstants.IHAVEOPT, g.getLong(), "IHAVEOPT");
        int flags = g.getShort() & 0xffff;
        assertTrue((flags & NbdConstants.FLAG_FIXED_NEWSTYLE) != 0, "fixed newstyle");
        send(Unpooled.buffer(4).writeInt(NbdConstants.FLAG_C_FIXED_NEWSTYLE | NbdConstants.FLAG_C_NO_ZEROES));
        return this;
    }

    void sendOption(NbdOption option, byte[] data) {
        send(Unpooled.buffer(16 + data.length).writeLong(NbdConstants.IHAVEOPT).writeInt(option.code())
            .writeInt(data.length).writeBytes(data));
    }

    OptionReply readOptionReply() {
        ByteBuffer h = ByteBuffer.wrap(probe.read(20));
        assertEquals(NbdConstants.OPTION_REPLY_MAGIC, h.getLong(), "option reply magic");
        int option = h.getInt();
        int type = h.getInt();
        int len = h.getInt();
        assertTrue(len >= 0 && len <= MAX_OPTION_REPLY, "option reply length " + len);
        return new OptionReply(option, type, probe.read(len));
    }

    /** STARTTLS, then adds {@code tls} at the front on the ACK and waits for the handshake event. */
    TlsHandshakeCompletion startTls(ChannelHandler tls) {
        sendOption(NbdOption.STARTTLS, new byte[0]);
        OptionReply r = readOptionReply();
        assertEquals(NbdOption.STARTTLS.code(), r.option());
        assertEquals(NbdOptionReplyType.ACK.code(), r.type(), () -> "STARTTLS reply type 0x"
            + Integer.toHexString(r.type()) + ": " + new String(r.data(), StandardCharsets.UTF_8));
        assertEquals(0, probe.buffered(), "no bytes after the STARTTLS ACK");
        try {
            ch.eventLoop().submit(() -> ch.pipeline().addFirst(NbdTls.HANDLER_NAME, tls)).get();
        } catch (InterruptedException | ExecutionException e) {
            throw new AssertionError(e);
        }
        return probe.awaitHandshake();
    }

    /** NBD_OPT_GO for the default export; returns the export size. */
    long go() {
        byte[] req = ByteBuffer.allocate(6).putInt(0).putShort((short) 0).array();
        sendOption(NbdOption.GO, req);
        long size = -1;
        while (true) {
            OptionReply r = readOptionReply();
            assertTrue(r.type() > 0, () -> "GO failed: type 0x" + Integer.toHexString(r.type()) + " "
                + new String(r.data(), StandardCharsets.UTF_8));
            if (r.type() == NbdOptionReplyType.ACK.code()) {
                return size;
            }
            ByteBuffer d = ByteBuffer.wrap(r.data());
            if (r.type() == 3 && d.getShort() == 0) { // NBD_REP_INFO / NBD_INFO_EXPORT
                size = d.getLong();
            }
        }
    }

    byte[] read(long offset, int length) {
        long c = cookie++;
        send(Unpooled.buffer(28).writeInt(NbdConstants.REQUEST_MAGIC).writeShort(0).writeShort(NbdCommand.READ.code())
            .writeLong(c).writeLong(offset).writeInt(length));
        ByteBuffer h = ByteBuffer.wrap(probe.read(16));
        assertEquals(NbdConstants.SIMPLE_REPLY_MAGIC, h.getInt(), "simple reply magic");
        assertEquals(0, h.getInt(), "NBD error");
        assertEquals(c, h.getLong(), "cookie");
        return probe.read(length);
    }

    void disconnect() {
        send(Unpooled.buffer(28).writeInt(NbdConstants.REQUEST_MAGIC).writeShort(0).writeShort(NbdCommand.DISC.code())
            .writeLong(cookie++).writeLong(0).writeInt(0));
    }

    private void send(ByteBuf b) {
        ch.writeAndFlush(b).syncUninterruptibly();
    }

    @Override
    public void close() {
        ch.close().syncUninterruptibly();
    }
}
