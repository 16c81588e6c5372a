package io.jbackup.nbd.client;

import io.jbackup.nbd.protocol.NbdConstants;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A scripted NBD server on plain blocking sockets for tests: each accepted connection runs the script, which uses
 * the helpers below to speak (or deliberately break) the protocol.
 */
final class FakeNbdServer implements AutoCloseable {
    interface Script {
        void run(FakeNbdServer.Conn c) throws Exception;
    }

    record Option(int code, byte[] data) {
    }

    record Req(int flags, int type, long cookie, long offset, long length, byte[] payload) {
    }

    private final ServerSocket server;
    private final List<Socket> sockets = new CopyOnWriteArrayList<>();
    private final List<Throwable> errors = new CopyOnWriteArrayList<>();
    private final Thread acceptor;

    FakeNbdServer(Script script) throws IOException {
        server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        acceptor = new Thread(() -> {
            while (!server.isClosed()) {
                try {
                    Socket s = server.accept();
                    sockets.add(s);
                    Thread t = new Thread(() -> {
                        try (s) {
                            script.run(new Conn(s));
                        } catch (Exception e) {
                            if (!server.isClosed()) {
                                errors.add(e);
                            }
                        }
                    }, "fake-nbd-conn");
                    t.setDaemon(true);
                    t.start();
                } catch (IOException e) {
                    return;
                }
            }
        }, "fake-nbd-accept");
        acceptor.setDaemon(true);
        acceptor.start();
    }

    /** Exceptions thrown by scripts (a script that finds the client misbehaving throws). */
    List<Throwable> errors() {
        return errors;
    }

    NbdUri uri() {
        return NbdUri.tcp("127.0.0.1", server.getLocalPort(), "", false);
    }

    @Override
    public void close() throws IOException {
        server.close();
        for (Socket s : sockets) {
            s.close();
        }
    }

    /** One connection: raw streams plus protocol helpers. */
    static final class Conn {
        final Socket socket;
        final DataInputStream in;
        final DataOutputStream out;

        Conn(Socket s) throws IOException {
            socket = s;
            in = new DataInputStream(new BufferedInputStream(s.getInputStream()));
            out = new DataOutputStream(new BufferedOutputStream(s.getOutputStream()));
        }

        void greeting(int flags) throws IOException {
            out.writeLong(NbdConstants.NBDMAGIC);
            out.writeLong(NbdConstants.IHAVEOPT);
            out.writeShort(flags);
            out.flush();
        }

        int clientFlags() throws IOException {
            return in.readInt();
        }

        Option option() throws IOException {
            long magic = in.readLong();
            if (magic != NbdConstants.IHAVEOPT) {
                throw new IOException("bad option magic " + Long.toHexString(magic));
            }
            int code = in.readInt();
            int len = in.readInt();
            byte[] data = new byte[len];
            in.readFully(data);
            return new Option(code, data);
        }

        void optReply(int option, int type, byte[] data) throws IOException {
            out.writeLong(NbdConstants.OPTION_REPLY_MAGIC);
            out.writeInt(option);
            out.writeInt(type);
            out.writeInt(data.length);
            out.write(data);
            out.flush();
        }

        /**
         * A conforming fixed-newstyle handshake up to GO's ACK: structured replies if {@code structured}, the
         * given contexts for SET_META_CONTEXT (any query), export {@code size} with {@code tflags}.
         */
        void handshake(long size, int tflags, boolean structured, Map<String, Integer> contexts) throws IOException {
            handshake(size, tflags, structured, contexts, List.of(infoExport(size, tflags)));
        }

        /** As above, but GO is answered with the given {@code NBD_REP_INFO} payloads (then ACK). */
        void handshake(long size, int tflags, boolean structured, Map<String, Integer> contexts, List<byte[]> goInfos)
            throws IOException {
            greeting(NbdConstants.FLAG_FIXED_NEWSTYLE | NbdConstants.FLAG_NO_ZEROES);
            clientFlags();
            while (true) {
                Option o = option();
                switch (o.code()) {
                    case 8 -> optReply(8, structured ? 1 : 0x80000001, new byte[0]);
                    case 10 -> {
                        for (Map.Entry<String, Integer> e : contexts.entrySet()) {
                            byte[] name = e.getKey().getBytes(StandardCharsets.UTF_8);
                            java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(4 + name.length);
                            b.putInt(e.getValue()).put(name);
                            optReply(10, 4, b.array());
                        }
                        optReply(10, 1, new byte[0]);
                    }
                    case 7 -> {
                        for (byte[] info : goInfos) {
                            optReply(7, 3, info);
                        }
                        optReply(7, 1, new byte[0]);
                        return;
                    }
                    default -> optReply(o.code(), 0x80000001, new byte[0]);
                }
            }
        }

        /** {@code NBD_INFO_EXPORT}: size and transmission flags. */
        static byte[] infoExport(long size, int tflags) {
            return java.nio.ByteBuffer.allocate(12).putShort((short) 0).putLong(size).putShort((short) tflags).array();
        }

        /** {@code NBD_INFO_BLOCK_SIZE}: minimum, preferred, maximum (unsigned 32-bit). */
        static byte[] infoBlockSize(long min, long preferred, long max) {
            return java.nio.ByteBuffer.allocate(14).putShort((short) 3).putInt((int) min).putInt((int) preferred)
                .putInt((int) max).array();
        }

        Req request() throws IOException {
            int magic = in.readInt();
            if (magic != NbdConstants.REQUEST_MAGIC) {
                throw new IOException("bad request magic " + Integer.toHexString(magic));
            }
            int flags = in.readUnsignedShort();
            int type = in.readUnsignedShort();
            long cookie = in.readLong();
            long offset = in.readLong();
            long length = in.readInt() & 0xffffffffL;
            byte[] payload = null;
            if (type == 1) {
                payload = new byte[(int) length];
                in.readFully(payload);
            }
            return new Req(flags, type, cookie, offset, length, payload);
        }

        void simple(int error, long cookie, byte[] data) throws IOException {
            out.writeInt(NbdConstants.SIMPLE_REPLY_MAGIC);
            out.writeInt(error);
            out.writeLong(cookie);
            if (data != null) {
                out.write(data);
            }
            out.flush();
        }

        /** A structured chunk header announcing {@code length}, then {@code payload} (which may be shorter). */
        void chunk(int flags, int type, long cookie, long length, byte[] payload) throws IOException {
            out.writeInt(NbdConstants.STRUCTURED_REPLY_MAGIC);
            out.writeShort(flags);
            out.writeShort(type);
            out.writeLong(cookie);
            out.writeInt((int) length);
            out.write(payload);
            out.flush();
        }

        void chunk(int flags, int type, long cookie, byte[] payload) throws IOException {
            chunk(flags, type, cookie, payload.length, payload);
        }

        /** An OFFSET_DATA chunk payload: offset then the data. */
        static byte[] offsetData(long offset, byte[] data) {
            return java.nio.ByteBuffer.allocate(8 + data.length).putLong(offset).put(data).array();
        }

        /** Sleeps until the peer closes (or a long time passes): a server that never answers. */
        void hang() throws IOException {
            socket.setSoTimeout(30_000);
            try {
                while (in.read() >= 0) {
                    // discard
                }
            } catch (java.net.SocketTimeoutException e) {
                // give up
            }
        }
    }
}
