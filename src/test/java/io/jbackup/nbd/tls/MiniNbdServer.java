package io.jbackup.nbd.tls;

import io.jbackup.nbd.protocol.NbdCommand;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdOption;
import io.jbackup.nbd.protocol.NbdOptionReplyType;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.socket.nio.NioServerDomainSocketChannel;
import io.netty.handler.codec.ByteToMessageDecoder;

import java.net.UnixDomainSocketAddress;
import java.nio.file.Path;
import java.util.List;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.function.Supplier;

/**
 * A test-only, read-only NBD server on a unix socket that requires TLS, just enough for qemu-img and libnbd
 * (nbdcopy) to copy an in-memory image: fixed newstyle, NBD_OPT_STARTTLS (then the TLS handler from {@link NbdTls}
 * is added exactly as documented there), NBD_OPT_GO/INFO with NBD_INFO_EXPORT, everything else
 * NBD_REP_ERR_UNSUP; simple replies to NBD_CMD_READ, NBD_CMD_DISC. It exists to test our server-side TLS handlers
 * against real GnuTLS clients; the real server lives in nbd.server.
 */
final class MiniNbdServer implements AutoCloseable {
    private static final int ERR_UNSUP = 0x80000001;
    private static final int ERR_TLS_REQD = 0x80000005;
    private static final int REP_INFO = 3;
    private static final int MAX_OPTION_DATA = 4096;
    private static final int MAX_READ = 32 * 1024 * 1024;

    final Channel listen;
    /** Handshake results of all connections, in order. */
    final Queue<TlsHandshakeCompletion> handshakes = new ConcurrentLinkedQueue<>();
    /** Exceptions seen by any connection. */
    final Queue<Throwable> errors = new ConcurrentLinkedQueue<>();
    private final Supplier<ChannelHandler> tls;
    private final byte[] image;

    MiniNbdServer(Net net, Path socket, byte[] image, Supplier<ChannelHandler> tls) {
        this.image = image;
        this.tls = tls;
        listen = new ServerBootstrap().group(net.group).channel(NioServerDomainSocketChannel.class)
            .childHandler(new ChannelInitializer<Channel>() {
                @Override
                protected void initChannel(Channel ch) {
                    ch.pipeline().addLast(new Responder());
                }
            }).bind(UnixDomainSocketAddress.of(socket)).syncUninterruptibly().channel();
    }

    @Override
    public void close() {
        listen.close().syncUninterruptibly();
    }

    private enum State { CLIENT_FLAGS, OPTION, TRANSMISSION }

    private final class Responder extends ByteToMessageDecoder {
        private State state = State.CLIENT_FLAGS;
        private boolean tlsUp;

        @Override
        public void channelActive(ChannelHandlerContext ctx) throws Exception {
            ctx.writeAndFlush(ctx.alloc().buffer(18).writeLong(NbdConstants.NBDMAGIC).writeLong(NbdConstants.IHAVEOPT)
                .writeShort(NbdConstants.FLAG_FIXED_NEWSTYLE | NbdConstants.FLAG_NO_ZEROES));
            super.channelActive(ctx);
        }

        @Override
        protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) {
            while (true) {
                switch (state) {
                    case CLIENT_FLAGS -> {
                        if (in.readableBytes() < 4) {
                            return;
                        }
                        in.readInt();
                        state = State.OPTION;
                    }
                    case OPTION -> {
                        if (in.readableBytes() < 16) {
                            return;
                        }
                        int len = in.getInt(in.readerIndex() + 12);
                        if (len < 0 || len > MAX_OPTION_DATA) {
                            ctx.close();
                            return;
                        }
                        if (in.readableBytes() < 16 + len) {
                            return;
                        }
                        in.skipBytes(8);
                        int option = in.readInt();
                        in.skipBytes(4 + len);
                        if (!option(ctx, option)) {
                            return;
                        }
                    }
                    case TRANSMISSION -> {
                        if (in.readableBytes() < 28) {
                            return;
                        }
                        in.skipBytes(6);
                        int type = in.readUnsignedShort();
                        long cookie = in.readLong();
                        long offset = in.readLong();
                        int length = in.readInt();
                        if (type == NbdCommand.DISC.code()) {
                            ctx.close();
                            return;
                        }
                        boolean ok = type == NbdCommand.READ.code() && offset >= 0 && length >= 0 && length <= MAX_READ
                            && offset + length <= image.length;
                        ByteBuf reply = ctx.alloc().buffer(16 + (ok ? length : 0)).writeInt(NbdConstants.SIMPLE_REPLY_MAGIC)
                            .writeInt(ok ? 0 : 22).writeLong(cookie);
                        if (ok) {
                            reply.writeBytes(image, (int) offset, length);
                        }
                        ctx.writeAndFlush(reply);
                    }
                }
            }
        }

        /** Answers one option; false when the decoder must stop (closed). */
        private boolean option(ChannelHandlerContext ctx, int option) {
            if (option == NbdOption.ABORT.code()) {
                reply(ctx, option, NbdOptionReplyType.ACK.code(), null);
                ctx.close();
                return false;
            }
            if (option == NbdOption.STARTTLS.code() && !tlsUp) {
                tlsUp = true;
                reply(ctx, option, NbdOptionReplyType.ACK.code(), null);
                // documented sequence: plaintext ACK written and flushed, then TLS in front, same event-loop call
                ctx.pipeline().addFirst(NbdTls.HANDLER_NAME, tls.get());
                return true;
            }
            if (!tlsUp) {
                reply(ctx, option, ERR_TLS_REQD, null);
                return true;
            }
            if (option == NbdOption.GO.code() || option == NbdOption.INFO.code()) {
                ByteBuf info = ctx.alloc().buffer(12).writeShort(0).writeLong(image.length)
                    .writeShort(NbdConstants.TFLAG_HAS_FLAGS | NbdConstants.TFLAG_READ_ONLY);
                reply(ctx, option, REP_INFO, info);
                reply(ctx, option, NbdOptionReplyType.ACK.code(), null);
                if (option == NbdOption.GO.code()) {
                    state = State.TRANSMISSION;
                }
                return true;
            }
            reply(ctx, option, ERR_UNSUP, null);
            return true;
        }

        private void reply(ChannelHandlerContext ctx, int option, int type, ByteBuf data) {
            int len = data == null ? 0 : data.readableBytes();
            ByteBuf b = ctx.alloc().buffer(20 + len).writeLong(NbdConstants.OPTION_REPLY_MAGIC).writeInt(option)
                .writeInt(type).writeInt(len);
            if (data != null) {
                b.writeBytes(data);
                data.release();
            }
            ctx.writeAndFlush(b);
        }

        @Override
        public void userEventTriggered(ChannelHandlerContext ctx, Object evt) throws Exception {
            if (evt instanceof TlsHandshakeCompletion c) {
                handshakes.add(c);
            }
            super.userEventTriggered(ctx, evt);
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            errors.add(cause);
            ctx.close();
        }
    }
}
