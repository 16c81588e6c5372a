package io.jbackup.nbd.server;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdOptionReplyType;
import java.io.EOFException;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/**
 * A byte-level NBD client for tests that need to send what a real client never would. Every read has a timeout
 * (default 10 s) so a test cannot hang on a silent server.
 */
final class RawNbdClient implements AutoCloseable {
    private final SocketChannel ch;
    private final Selector selector;
    private long timeoutMillis = 10_000;

    record OptReply(int option, int type, byte[] data) {
        String text() {
            return new String(data, StandardCharsets.UTF_8);
        }

        NbdOptionReplyType replyType() {
            return NbdOptionReplyType.valueOf(type);
        }
    }

    /** A structured reply chunk or a simple reply (type -1). */
    record Chunk(int flags, int type, long cookie, byte[] payload, int error) {
        boolean done() {
            return type == -1 || (flags & NbdConstants.REPLY_FLAG_DONE) != 0;
        }

        String message() {
            ByteBuffer b = ByteBuffer.wrap(payload);
            b.getInt();
            int n = b.getShort() & 0xffff;
            return new String(payload, 6, n, StandardCharsets.UTF_8);
        }
    }

    RawNbdClient(Path socket) throws IOException {
        ch = SocketChannel.open(StandardProtocolFamily.UNIX);
        ch.connect(UnixDomainSocketAddress.of(socket));
        ch.configureBlocking(false);
        selector = Selector.open();
        ch.register(selector, SelectionKey.OP_READ);
    }

    RawNbdClient timeout(long millis) {
        this.timeoutMillis = millis;
        return this;
    }

    /** Reads the greeting, sends client flags FIXED_NEWSTYLE|NO_ZEROES. */
    RawNbdClient handshake() throws IOException {
        ByteBuffer g = read(18);
        assertEquals(NbdConstants.NBDMAGIC, g.getLong());
        assertEquals(NbdConstants.IHAVEOPT, g.getLong());
        assertEquals(NbdConstants.FLAG_FIXED_NEWSTYLE | NbdConstants.FLAG_NO_ZEROES, g.getShort());
        write(ByteBuffer.allocate(4).putInt(3).flip());
        return this;
    }

    void write(ByteBuffer b) throws IOException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMillis);
        while (b.hasRemaining()) {
            if (ch.write(b) == 0) {
                if (System.nanoTime() > deadline) {
                    throw new IOException("write timed out");
                }
                sleep(1);
            }
        }
    }

    void write(byte[] b) throws IOException {
        write(ByteBuffer.wrap(b));
    }

    void sendOption(int option, byte[] data) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(16 + data.length);
        b.putLong(NbdConstants.IHAVEOPT).putInt(option).putInt(data.length).put(data).flip();
        write(b);
    }

    OptReply readOptionReply() throws IOException {
        ByteBuffer h = read(20);
        assertEquals(NbdConstants.OPTION_REPLY_MAGIC, h.getLong());
        int opt = h.getInt();
        int type = h.getInt();
        int len = h.getInt();
        if (len < 0 || len > (1 << 20)) {
            throw new IOException("option reply length " + len);
        }
        byte[] data = new byte[len];
        read(len).get(data);
        return new OptReply(opt, type, data);
    }

    static byte[] goData(String name, int... infos) {
        byte[] n = name.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(4 + n.length + 2 + 2 * infos.length);
        b.putInt(n.length).put(n).putShort((short) infos.length);
        for (int i : infos) {
            b.putShort((short) i);
        }
        return b.array();
    }

    static byte[] metaData(String export, String... queries) {
        byte[] n = export.getBytes(StandardCharsets.UTF_8);
        int len = 8 + n.length;
        for (String q : queries) {
            len += 4 + q.getBytes(StandardCharsets.UTF_8).length;
        }
        ByteBuffer b = ByteBuffer.allocate(len);
        b.putInt(n.length).put(n).putInt(queries.length);
        for (String q : queries) {
            byte[] qb = q.getBytes(StandardCharsets.UTF_8);
            b.putInt(qb.length).put(qb);
        }
        return b.array();
    }

    /** Negotiates structured replies (optional), base:allocation (if structured) and GO; returns the flags. */
    int go(String export, boolean structured) throws IOException {
        if (structured) {
            sendOption(8, new byte[0]);
            assertEquals(1, readOptionReply().type());
            sendOption(10, metaData(export, "base:allocation"));
            OptReply r;
            while ((r = readOptionReply()).type() == NbdOptionReplyType.META_CONTEXT.code()) {
                // context id 0
            }
            assertEquals(1, r.type());
        }
        sendOption(7, goData(export));
        int flags = -1;
        OptReply r;
        while ((r = readOptionReply()).type() == NbdOptionReplyType.INFO.code()) {
            ByteBuffer d = ByteBuffer.wrap(r.data());
            if (d.getShort() == 0) {
                d.getLong();
                flags = d.getShort() & 0xffff;
            }
        }
        assertEquals(NbdOptionReplyType.ACK.code(), r.type(), "GO failed: " + r.text());
        return flags;
    }

    void sendRequest(int flags, int type, long cookie, long offset, long length, byte[] payload) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(28 + (payload == null ? 0 : payload.length));
        b.putInt(NbdConstants.REQUEST_MAGIC).putShort((short) flags).putShort((short) type).putLong(cookie)
            .putLong(offset).putInt((int) length);
        if (payload != null) {
            b.put(payload);
        }
        write(b.flip());
    }

    /** An extended reply chunk: {@code 0x6e8a278c flags(2) type(2) cookie(8) offset(8) length(8) payload}. */
    record ExtChunk(int flags, int type, long cookie, long offset, byte[] payload) {
        boolean done() {
            return (flags & NbdConstants.REPLY_FLAG_DONE) != 0;
        }

        int error() {
            return (type & 0x8000) != 0 ? ByteBuffer.wrap(payload).getInt() : 0;
        }
    }

    /** A 32-byte extended request, then the payload (if any) as given: set PAYLOAD_LEN in {@code flags} for it. */
    void sendExtendedRequest(int flags, int type, long cookie, long offset, long length, byte[] payload)
        throws IOException {
        ByteBuffer b = ByteBuffer.allocate(32 + (payload == null ? 0 : payload.length));
        b.putInt(NbdConstants.EXTENDED_REQUEST_MAGIC).putShort((short) flags).putShort((short) type).putLong(cookie)
            .putLong(offset).putLong(length);
        if (payload != null) {
            b.put(payload);
        }
        write(b.flip());
    }

    /** Reads one extended reply chunk (nothing else is allowed once extended headers were negotiated). */
    ExtChunk readExtendedReply() throws IOException {
        ByteBuffer h = read(32);
        assertEquals(NbdConstants.EXTENDED_REPLY_MAGIC, h.getInt(), "extended reply magic");
        int flags = h.getShort() & 0xffff;
        int type = h.getShort() & 0xffff;
        long cookie = h.getLong();
        long offset = h.getLong();
        long len = h.getLong();
        if (len < 0 || len > (64 << 20)) {
            throw new IOException("chunk length " + len);
        }
        byte[] payload = new byte[(int) len];
        read((int) len).get(payload);
        return new ExtChunk(flags, type, cookie, offset, payload);
    }

    /** Reads a simple reply (data of {@code readLength} bytes if it is a successful READ) or a structured chunk. */
    Chunk readReply(int readLength) throws IOException {
        ByteBuffer m = read(4);
        int magic = m.getInt();
        if (magic == NbdConstants.SIMPLE_REPLY_MAGIC) {
            ByteBuffer h = read(12);
            int error = h.getInt();
            long cookie = h.getLong();
            byte[] data = new byte[error == 0 ? readLength : 0];
            if (data.length > 0) {
                read(data.length).get(data);
            }
            return new Chunk(0, -1, cookie, data, error);
        }
        assertEquals(NbdConstants.STRUCTURED_REPLY_MAGIC, magic, "reply magic");
        ByteBuffer h = read(16);
        int flags = h.getShort() & 0xffff;
        int type = h.getShort() & 0xffff;
        long cookie = h.getLong();
        int len = h.getInt();
        if (len < 0 || len > (64 << 20)) {
            throw new IOException("chunk length " + len);
        }
        byte[] payload = new byte[len];
        read(len).get(payload);
        int error = (type & 0x8000) != 0 ? ByteBuffer.wrap(payload).getInt() : 0;
        return new Chunk(flags, type, cookie, payload, error);
    }

    /** Reads exactly {@code n} bytes or fails with EOFException (connection closed) or a timeout. */
    ByteBuffer read(int n) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(n);
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMillis);
        while (b.hasRemaining()) {
            int r = ch.read(b);
            if (r < 0) {
                throw new EOFException("connection closed after " + b.position() + " of " + n + " bytes");
            }
            if (r == 0) {
                long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
                if (left <= 0) {
                    throw new IOException("timed out reading " + n + " bytes (got " + b.position() + ")");
                }
                selector.select(left);
                selector.selectedKeys().clear();
            }
        }
        return b.flip();
    }

    /** True if the server closes the connection (EOF or reset) within the timeout; extra bytes are skipped. */
    boolean closedByServer() throws IOException {
        ByteBuffer b = ByteBuffer.allocate(65536);
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMillis);
        while (true) {
            int r;
            try {
                r = ch.read(b);
            } catch (IOException reset) {
                return true;
            }
            if (r < 0) {
                return true;
            }
            b.clear();
            if (r == 0) {
                long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
                if (left <= 0) {
                    return false;
                }
                selector.select(left);
                selector.selectedKeys().clear();
            }
        }
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public void close() throws IOException {
        selector.close();
        ch.close();
    }
}
