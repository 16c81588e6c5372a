package io.jbackup.store;

import com.github.luben.zstd.Zstd;
import com.github.luben.zstd.ZstdCompressCtx;
import com.github.luben.zstd.ZstdDecompressCtx;
import com.github.luben.zstd.ZstdException;

import javax.crypto.AEADBadTagException;
import javax.crypto.Cipher;
import javax.crypto.spec.GCMParameterSpec;
import java.nio.ByteBuffer;
import java.security.GeneralSecurityException;
import java.security.SecureRandom;
import java.util.Arrays;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.zip.CRC32C;

/**
 * Turns chunk data into pack records and back (layout: {@link PackFormat}): chunk id, zstd compression, AES-256-GCM,
 * CRC32C. Thread-safe: per-call state (zstd contexts, ciphers, digests, buffers) lives in a {@link Scratch}
 * borrowed from a small pool, so contexts are reused across chunks and never shared between threads.
 */
final class ChunkCodec implements AutoCloseable {
    private final int level;
    private final RepositoryKeys keys;
    private final int maxPooled;
    private final ConcurrentLinkedQueue<Scratch> pool = new ConcurrentLinkedQueue<>();
    private final AtomicInteger pooled = new AtomicInteger();
    private volatile boolean closed;

    ChunkCodec(int level, RepositoryKeys keys, int maxPooled) {
        this.level = level;
        this.keys = keys;
        this.maxPooled = maxPooled;
    }

    boolean encrypted() {
        return keys != null;
    }

    RepositoryKeys keys() {
        return keys;
    }

    /** Borrows per-thread state; give it back with {@link #release}. */
    Scratch borrow() {
        Scratch s = pool.poll();
        if (s != null) {
            pooled.decrementAndGet();
            return s;
        }
        return new Scratch();
    }

    void release(Scratch s) {
        if (closed || pooled.get() >= maxPooled) {
            s.close();
            return;
        }
        pooled.incrementAndGet();
        pool.offer(s);
        if (closed && pool.remove(s)) {
            s.close();
        }
    }

    @Override
    public void close() {
        closed = true;
        for (Scratch s; (s = pool.poll()) != null; ) {
            s.close();
        }
    }

    /** A new {@link ChunkHasher}: SHA-256, or HMAC-SHA256 under the chunk-id key, as {@link #chunkId}. */
    ChunkHasher newHasher() {
        return keys != null ? ChunkHasher.hmacSha256(keys.idKey) : ChunkHasher.sha256();
    }

    /** The chunk id of {@code data[0, len)}: SHA-256, or HMAC-SHA256 under the chunk-id key. */
    byte[] chunkId(Scratch s, byte[] data, int len) {
        s.update(data, 0, len);
        return s.finish();
    }

    /**
     * Encodes one chunk record into {@code s.record()} and returns its length. The header's chunk id is
     * {@code id}; the payload is compressed when that shrinks it, then sealed if the repository is encrypted.
     * The whole record in one array, as the format tests read it; the backup path calls {@link #encodeParts}.
     */
    int encode(Scratch s, byte[] id, byte[] data, int len) {
        int recLen = encodeParts(s, id, data, len);
        if (s.body != null) {
            System.arraycopy(s.body, 0, s.record(), PackFormat.RECORD_HEADER_SIZE, len);
            s.body = null;
        }
        return recLen;
    }

    /**
     * {@link #encode}, except that a chunk stored as it is (it did not compress, and the repository is not encrypted)
     * is not copied behind its header: {@code s.record()} then holds the header only and {@link Scratch#body()} is
     * {@code data}, whose first {@code len} bytes are the payload (else {@code body()} is null and the whole record is
     * in {@code s.record()}). The pack writer copies the two parts straight into its staging buffer: one copy of
     * each incompressible chunk instead of two (bench/README.md, "What changed on 2026-12-07, fourth session").
     */
    int encodeParts(Scratch s, byte[] id, byte[] data, int len) {
        s.body = null;
        int bound = (int) Zstd.compressBound(len);
        byte[] rec = s.record(PackFormat.RECORD_HEADER_SIZE + Math.max(bound, len) + PackFormat.GCM_OVERHEAD);
        int payloadStart = PackFormat.RECORD_HEADER_SIZE;
        byte codec = PackFormat.CODEC_STORED;
        byte[] plain = data;
        int plainLen = len;
        if (level != 0 && compressible(s, data, len)) {
            byte[] dst = keys == null ? rec : s.tmp(bound);
            int dstOff = keys == null ? payloadStart : 0;
            int clen = s.compressor(level).compressByteArray(dst, dstOff, bound, data, 0, len);
            if (clen < len) {
                codec = PackFormat.CODEC_ZSTD;
                plain = dst;
                plainLen = clen;
            }
        }
        int payloadLen = keys == null ? plainLen : PackFormat.GCM_NONCE + plainLen + PackFormat.GCM_TAG;
        ByteBuffer h = ByteBuffer.wrap(rec, 0, PackFormat.RECORD_HEADER_SIZE);
        h.putInt(PackFormat.RECORD_MAGIC).put(PackFormat.TYPE_CHUNK).put(codec)
            .put((byte) (keys == null ? 0 : PackFormat.FLAG_ENCRYPTED)).put((byte) 0).put(id)
            .putInt(len).putInt(payloadLen);
        if (keys == null) {
            if (codec == PackFormat.CODEC_STORED) {
                s.body = data;
            }
        } else {
            byte[] nonceAndCt = rec;
            s.random().nextBytes(s.nonce);
            System.arraycopy(s.nonce, 0, nonceAndCt, payloadStart, PackFormat.GCM_NONCE);
            try {
                Cipher c = s.cipher();
                c.init(Cipher.ENCRYPT_MODE, keys.chunkKey, new GCMParameterSpec(128, s.nonce));
                c.updateAAD(rec, 0, PackFormat.RECORD_CRC_OFFSET);
                int n = c.doFinal(plain, 0, plainLen, rec, payloadStart + PackFormat.GCM_NONCE);
                if (n != plainLen + PackFormat.GCM_TAG) {
                    throw new IllegalStateException("AES-GCM produced " + n + " bytes, expected " + (plainLen + 16));
                }
            } catch (GeneralSecurityException e) {
                throw new IllegalStateException("AES-GCM encryption failed", e);
            }
        }
        CRC32C crc = s.crc;
        crc.reset();
        crc.update(rec, 0, PackFormat.RECORD_CRC_OFFSET);
        if (s.body != null) {
            crc.update(data, 0, len);
        } else {
            crc.update(rec, payloadStart, payloadLen);
        }
        ByteBuffer.wrap(rec).putInt(PackFormat.RECORD_CRC_OFFSET, (int) crc.getValue());
        return PackFormat.RECORD_HEADER_SIZE + payloadLen;
    }

    /** Chunks at least this long are probed before they are compressed (smaller ones are simply compressed). */
    static final int PROBE_MIN_LENGTH = 128 * 1024;
    /** Length of each of the three probe samples (start, middle and end of the chunk). */
    static final int PROBE_SAMPLE = 4096;

    /**
     * Whether compressing {@code data[0, len)} may pay: false when three 4 KiB samples (start, middle, end) each
     * shrink by less than 3% under the repository's level, i.e. the chunk holds compressed or encrypted content
     * (archives, media, encrypted guests, random data). Costs about 1% of compressing the chunk; saves all of it
     * for such chunks (zstd -1 spends ~1.5 CPU-s per GB of random data to find that out). A chunk with anything
     * compressible in one of the samples is compressed as before (and stored as is when that does not shrink it).
     */
    private boolean compressible(Scratch s, byte[] data, int len) {
        if (len < PROBE_MIN_LENGTH) {
            return true;
        }
        int bound = (int) Zstd.compressBound(PROBE_SAMPLE);
        byte[] tmp = s.tmp(bound);
        ZstdCompressCtx z = s.compressor(level);
        for (int off : new int[] {0, (len - PROBE_SAMPLE) / 2, len - PROBE_SAMPLE}) {
            int c = z.compressByteArray(tmp, 0, bound, data, off, PROBE_SAMPLE);
            if (c < PROBE_SAMPLE - PROBE_SAMPLE * 3 / 100) {
                return true;
            }
        }
        return false;
    }

    /** A record failed a check; the message says which. */
    static final class RecordException extends Exception {
        private static final long serialVersionUID = 1L;

        RecordException(String message) {
            super(message);
        }
    }

    /**
     * Reads the fixed header fields of a record: returns {@code {rawLength, payloadLength}} after checking the magic,
     * type, codec, flags and bounds (not the checksum).
     */
    int[] parseHeader(byte[] rec, int off, int available) throws RecordException {
        if (available < PackFormat.RECORD_HEADER_SIZE) {
            throw new RecordException("record header truncated (" + available + " of 52 bytes)");
        }
        ByteBuffer b = ByteBuffer.wrap(rec, off, PackFormat.RECORD_HEADER_SIZE);
        int magic = b.getInt(off);
        if (magic != PackFormat.RECORD_MAGIC) {
            throw new RecordException(String.format("bad record magic 0x%08x (expected 0x%08x)", magic,
                PackFormat.RECORD_MAGIC));
        }
        byte type = rec[off + 4];
        byte codec = rec[off + 5];
        byte flags = rec[off + 6];
        if (type != PackFormat.TYPE_CHUNK || (codec != PackFormat.CODEC_STORED && codec != PackFormat.CODEC_ZSTD)) {
            throw new RecordException("unknown record type " + type + " or codec " + codec);
        }
        boolean enc = (flags & PackFormat.FLAG_ENCRYPTED) != 0;
        if (enc != (keys != null)) {
            throw new RecordException(enc ? "record is encrypted but the repository is not"
                : "record is not encrypted but the repository is");
        }
        int raw = b.getInt(off + 40);
        int payload = b.getInt(off + 44);
        if (raw < 1 || raw > RepositoryOptions.MAX_CHUNK_SIZE) {
            throw new RecordException("raw length " + raw + " out of range (1.." + RepositoryOptions.MAX_CHUNK_SIZE + ")");
        }
        int maxPayload = raw + (enc ? PackFormat.GCM_OVERHEAD : 0);
        int minPayload = enc ? PackFormat.GCM_OVERHEAD + 1 : 1;
        if (payload < minPayload || payload > maxPayload) {
            throw new RecordException("payload length " + payload + " out of range (" + minPayload + ".." + maxPayload
                + " for raw length " + raw + ")");
        }
        return new int[] {raw, payload};
    }

    /** The chunk id stored in a record header. */
    static byte[] headerId(byte[] rec, int off) {
        return Arrays.copyOfRange(rec, off + 8, off + 8 + ChunkId.LENGTH);
    }

    /**
     * Decodes and checks a whole record {@code rec[0, recLen)}; returns the plaintext (a new array of
     * {@code expectedLen} bytes). {@code expectedId} may be null (scan without expectation: only the stored id is
     * checked against the data).
     */
    byte[] decode(Scratch s, byte[] rec, int recLen, byte[] expectedId, int expectedLen) throws RecordException {
        int[] hp = checkRecord(s, rec, recLen, expectedId, expectedLen);
        byte[] out = new byte[hp[0]];
        decodeChecked(s, rec, hp, java.nio.ByteBuffer.wrap(out));
        return out;
    }

    /**
     * {@link #decode} into {@code dst} (heap or direct, e.g. a pooled buffer a restore writes from) instead of a new
     * array: the plaintext goes to {@code dst[position, position + raw)} in one pass (decompressed straight into it)
     * and is hashed there; on return the position is advanced past it. On a failure {@code dst}'s content is
     * undefined and its position unchanged.
     */
    void decodeInto(Scratch s, byte[] rec, int recLen, byte[] expectedId, int expectedLen, java.nio.ByteBuffer dst)
        throws RecordException {
        int[] hp = checkRecord(s, rec, recLen, expectedId, expectedLen);
        if (dst.remaining() < hp[0]) {
            throw new IllegalArgumentException("buffer holds " + dst.remaining() + " bytes, chunk has " + hp[0]);
        }
        decodeChecked(s, rec, hp, dst);
    }

    /** The payload of a checked record ({@code hp} from {@link #checkRecord}) into {@code dst}, hashed there. */
    private void decodeChecked(Scratch s, byte[] rec, int[] hp, java.nio.ByteBuffer dst) throws RecordException {
        int raw = hp[0];
        byte[] src = rec;
        int srcOff = PackFormat.RECORD_HEADER_SIZE;
        int srcLen = hp[1];
        if (keys != null) {
            src = s.tmp(srcLen);
            srcLen = decrypt(s, rec, srcLen, src);
            srcOff = 0;
        }
        int pos = dst.position();
        if (rec[5] == PackFormat.CODEC_ZSTD) {
            int n;
            try {
                n = dst.isDirect()
                    ? s.decompressor().decompressByteArrayToDirectByteBuffer(dst, pos, raw, src, srcOff, srcLen)
                    : s.decompressor().decompressByteArray(dst.array(), dst.arrayOffset() + pos, raw, src, srcOff,
                        srcLen);
            } catch (ZstdException e) {
                throw new RecordException("zstd decompression failed: " + e.getMessage());
            }
            if (n != raw) {
                throw new RecordException("decompressed to " + n + " bytes (expected " + raw + ")");
            }
        } else {
            if (srcLen != raw) {
                throw new RecordException("stored payload is " + srcLen + " bytes (expected " + raw + ")");
            }
            dst.put(pos, src, srcOff, raw);
        }
        byte[] actual = s.digest(dst, pos, raw);
        if (Arrays.mismatch(rec, 8, 8 + ChunkId.LENGTH, actual, 0, ChunkId.LENGTH) >= 0) {
            throw new RecordException("digest mismatch: data hashes to " + ChunkId.hex(actual));
        }
        dst.position(pos + raw);
    }

    /** Decrypts the payload of {@code rec} into {@code pt}; returns the plaintext length. */
    private int decrypt(Scratch s, byte[] rec, int payloadLen, byte[] pt) throws RecordException {
        int srcOff = PackFormat.RECORD_HEADER_SIZE;
        try {
            Cipher c = s.cipher();
            c.init(Cipher.DECRYPT_MODE, keys.chunkKey, new GCMParameterSpec(128, rec, srcOff, PackFormat.GCM_NONCE));
            c.updateAAD(rec, 0, PackFormat.RECORD_CRC_OFFSET);
            return c.doFinal(rec, srcOff + PackFormat.GCM_NONCE, payloadLen - PackFormat.GCM_NONCE, pt, 0);
        } catch (AEADBadTagException e) {
            throw new RecordException("authentication tag mismatch (AES-GCM)");
        } catch (GeneralSecurityException e) {
            throw new RecordException("decryption failed: " + e.getMessage());
        }
    }

    /** Checks a record's header, expected id and length and CRC32C; returns {@code {rawLength, payloadLength}}. */
    private int[] checkRecord(Scratch s, byte[] rec, int recLen, byte[] expectedId, int expectedLen)
        throws RecordException {
        int[] hp = parseHeader(rec, 0, recLen);
        int raw = hp[0];
        int payloadLen = hp[1];
        if (PackFormat.RECORD_HEADER_SIZE + payloadLen != recLen) {
            throw new RecordException("record length " + recLen + " does not match its header (52 + " + payloadLen + ")");
        }
        if (expectedId != null && Arrays.mismatch(rec, 8, 8 + ChunkId.LENGTH, expectedId, 0, ChunkId.LENGTH) >= 0) {
            throw new RecordException("record holds chunk " + ChunkId.hex(headerId(rec, 0)) + " instead");
        }
        if (expectedLen >= 0 && raw != expectedLen) {
            throw new RecordException("raw length " + raw + " (expected " + expectedLen + ")");
        }
        CRC32C crc = s.crc;
        crc.reset();
        crc.update(rec, 0, PackFormat.RECORD_CRC_OFFSET);
        crc.update(rec, PackFormat.RECORD_HEADER_SIZE, payloadLen);
        int stored = ByteBuffer.wrap(rec).getInt(PackFormat.RECORD_CRC_OFFSET);
        if ((int) crc.getValue() != stored) {
            throw new RecordException(String.format("checksum mismatch: CRC32C 0x%08x, recorded 0x%08x",
                (int) crc.getValue(), stored));
        }
        return hp;
    }

    /** Bytes of a direct buffer copied to the heap at a time to be hashed (see {@link Scratch#digest}). */
    static final int HASH_PIECE = 32 * 1024;

    /** Per-thread state: zstd contexts, cipher, digests and buffers, reused across chunks. */
    final class Scratch {
        /** The chunk-id hash: HMAC-SHA256 under encryption, else SHA-256 (the same as {@link #newHasher}). */
        private final ChunkHasher id = newHasher();
        final CRC32C crc = new CRC32C();
        final byte[] nonce = new byte[PackFormat.GCM_NONCE];
        private ZstdCompressCtx cctx;
        private ZstdDecompressCtx dctx;
        private Cipher cipher;
        private SecureRandom random;
        private byte[] record = new byte[0];
        /** the payload of the last {@link #encodeParts} when it is not behind the header in {@link #record} */
        private byte[] body;
        private byte[] tmp = new byte[0];
        private final byte[] hashPiece = new byte[HASH_PIECE];

        private Scratch() {
        }

        byte[] record() {
            return record;
        }

        /** See {@link #encodeParts}: the stored payload outside {@link #record()}, or null. */
        byte[] body() {
            return body;
        }

        byte[] record(int size) {
            if (record.length < size) {
                record = new byte[size];
            }
            return record;
        }

        /**
         * The chunk id of {@code buf[pos, pos + len)} (SHA-256, or HMAC-SHA256 under encryption). A heap buffer is
         * hashed in place; a direct one is copied through {@link #HASH_PIECE}-byte pieces of a per-thread array,
         * each hashed while it is still in the L1 cache. The JDK's own {@code update(ByteBuffer)} does the same
         * through a 4 KiB array, 256 calls per MiB in a loop that the JIT compiles only after most of a restore
         * has run interpreted (a tenth of the restore's CPU in perf).
         */
        byte[] digest(java.nio.ByteBuffer buf, int pos, int len) {
            if (buf.hasArray()) {
                update(buf.array(), buf.arrayOffset() + pos, len);
                return finish();
            }
            byte[] piece = hashPiece;
            for (int done = 0; done < len; ) {
                int n = Math.min(piece.length, len - done);
                buf.get(pos + done, piece, 0, n);
                update(piece, 0, n);
                done += n;
            }
            return finish();
        }

        /** Feeds {@code a[off, off + len)} to the chunk-id hash. */
        private void update(byte[] a, int off, int len) {
            id.update(a, off, len);
        }

        /** The chunk id of what {@link #update} was fed; resets the hash. */
        private byte[] finish() {
            return id.finish();
        }

        byte[] tmp(int size) {
            if (tmp.length < size) {
                tmp = new byte[size];
            }
            return tmp;
        }

        ZstdCompressCtx compressor(int lvl) {
            if (cctx == null) {
                cctx = new ZstdCompressCtx();
                cctx.setLevel(lvl);
                cctx.setChecksum(false);
            }
            return cctx;
        }

        ZstdDecompressCtx decompressor() {
            if (dctx == null) {
                dctx = new ZstdDecompressCtx();
            }
            return dctx;
        }

        Cipher cipher() throws GeneralSecurityException {
            if (cipher == null) {
                cipher = Cipher.getInstance("AES/GCM/NoPadding");
            }
            return cipher;
        }

        SecureRandom random() {
            if (random == null) {
                random = new SecureRandom();
            }
            return random;
        }

        void close() {
            if (cctx != null) {
                cctx.close();
            }
            if (dctx != null) {
                dctx.close();
            }
            record = new byte[0];
            tmp = new byte[0];
        }
    }
}
