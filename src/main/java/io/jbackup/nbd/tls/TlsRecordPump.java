package io.jbackup.nbd.tls;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

import java.io.IOException;
import java.nio.ByteBuffer;

import org.bouncycastle.tls.TlsProtocol;

/**
 * Moves bytes between netty {@link ByteBuf}s and a non-blocking BouncyCastle {@link TlsProtocol} for
 * {@link BcTlsHandler}: ciphertext in ({@link #offer}), plaintext out ({@link #readPlaintext}), plaintext in
 * ({@link #encrypt}) and ciphertext out ({@link #takeOutput}). It only copies; when to call what is the handler's.
 *
 * <p>Copies: heap buffers are passed to BouncyCastle without copying; direct buffers are copied once, in
 * {@value #RECORD_PLAINTEXT}-byte pieces, into a per-connection scratch array. Ciphertext and plaintext are read
 * from BouncyCastle straight into a pooled buffer. Not thread-safe.
 */
final class TlsRecordPump {
    /** Largest TLS plaintext record; direct-buffer input is copied in pieces of this size. */
    static final int RECORD_PLAINTEXT = 1 << 14;

    private final TlsProtocol tls;
    private byte[] scratch;

    TlsRecordPump(TlsProtocol tls) {
        this.tls = tls;
    }

    /** Feeds all readable ciphertext of {@code in} to BouncyCastle (stops early if the connection closes). */
    void offer(ByteBuf in) throws IOException {
        int len = in.readableBytes();
        if (len == 0) {
            return;
        }
        if (in.hasArray()) {
            tls.offerInput(in.array(), in.arrayOffset() + in.readerIndex(), len);
            in.skipBytes(len);
            return;
        }
        byte[] buf = scratch();
        while (in.isReadable() && !tls.isClosed()) {
            int n = Math.min(buf.length, in.readableBytes());
            in.readBytes(buf, 0, n);
            tls.offerInput(buf, 0, n);
        }
    }

    /** Decrypted bytes ready to be read. */
    int availablePlaintext() {
        return tls.getAvailableInputBytes();
    }

    /** Reads {@code n} ({@link #availablePlaintext()}) decrypted bytes into a new buffer; released on failure. */
    ByteBuf readPlaintext(ByteBufAllocator alloc, int n) {
        ByteBuf plain = alloc.buffer(n);
        try {
            if (plain.hasArray()) {
                tls.readInput(plain.array(), plain.arrayOffset() + plain.writerIndex(), n);
            } else {
                tls.readInput(plain.internalNioBuffer(plain.writerIndex(), n), n);
            }
            plain.writerIndex(plain.writerIndex() + n);
            return plain;
        } catch (RuntimeException e) {
            plain.release();
            throw e;
        }
    }

    /** Feeds {@code len} readable bytes of {@code buf} to BouncyCastle as application data. */
    void encrypt(ByteBuf buf, int len) throws IOException {
        if (buf.hasArray()) {
            tls.writeApplicationData(buf.array(), buf.arrayOffset() + buf.readerIndex(), len);
            buf.skipBytes(len);
            return;
        }
        byte[] s = scratch();
        while (len > 0) {
            int n = Math.min(s.length, len);
            buf.readBytes(s, 0, n);
            tls.writeApplicationData(s, 0, n);
            len -= n;
        }
    }

    /** Everything BouncyCastle has queued to send (records, alerts, close_notify) in a new buffer, or null. */
    ByteBuf takeOutput(ByteBufAllocator alloc) {
        int n = tls.getAvailableOutputBytes();
        if (n == 0) {
            return null;
        }
        ByteBuf out = alloc.directBuffer(n);
        if (out.hasArray()) {
            tls.readOutput(out.array(), out.arrayOffset() + out.writerIndex(), n);
        } else {
            ByteBuffer nio = out.internalNioBuffer(out.writerIndex(), n);
            tls.readOutput(nio, n);
        }
        out.writerIndex(out.writerIndex() + n);
        return out;
    }

    private byte[] scratch() {
        if (scratch == null) {
            scratch = new byte[RECORD_PLAINTEXT];
        }
        return scratch;
    }
}
