package io.jbackup.store;

import java.nio.file.Path;

/**
 * The pack file format. A pack is an append-only file of chunk records, written by one backup writer under a
 * temporary name ({@code tmp/<owner>/<n>/<name>.pack}) and, once sealed, renamed to {@code packs/<hh>/<name>.pack}
 * where {@code name} is 32 random hex characters and {@code hh} its first two. All integers are big-endian.
 *
 * <p><b>Header</b> (32 bytes):
 * <pre>
 *  0  4  magic "JBPK" (0x4A42504B)
 *  4  2  format version (1)
 *  6  2  flags: bit 0 = records are encrypted
 *  8 16  pack id (the name's 16 bytes)
 * 24  8  reserved (0)
 * </pre>
 *
 * <p><b>Chunk record</b> (52-byte header, then the payload):
 * <pre>
 *  0  4  magic "JBCR" (0x4A424352)
 *  4  1  type (1 = chunk)
 *  5  1  codec: 0 = stored, 1 = zstd
 *  6  1  flags: bit 0 = payload is encrypted
 *  7  1  reserved (0)
 *  8 32  chunk id: SHA-256 of the plaintext, or HMAC-SHA256 under the chunk-id subkey when encrypted
 * 40  4  raw length: the chunk's plaintext length (1 .. 4 MiB)
 * 44  4  payload length P (at most raw length + 28)
 * 48  4  CRC32C of header bytes [0, 48) followed by the P payload bytes
 * 52  P  payload: the zstd frame (or the raw bytes when compression does not shrink them); when encrypted,
 *        nonce (12 random bytes) || AES-256-GCM ciphertext || tag (16), with header bytes [0, 48) as additional
 *        data, so a record cannot be moved under another chunk id undetected
 * </pre>
 * A reader checks, in order: magic and fields, chunk id and raw length against what it expects, CRC32C, the GCM
 * tag, decompression to exactly the raw length, and the chunk id recomputed from the plaintext.
 *
 * <p><b>Footer</b> (written when the pack is sealed, after the last record): one 48-byte entry per record, in
 * record order:
 * <pre>
 *  0 32  chunk id
 * 32  8  record offset in the pack
 * 40  4  record length (52 + P)
 * 44  4  raw length
 * </pre>
 * then the <b>trailer</b> (64 bytes, the end of the file):
 * <pre>
 *  0  8  footer offset F (= end of the last record)
 *  8  4  entry count N
 * 12  4  reserved (0)
 * 16 32  footer MAC over header[0, 32) || the N entries || trailer[0, 16): SHA-256, or HMAC-SHA256 under the
 *        metadata subkey when encrypted
 * 48  8  reserved (0)
 * 56  8  magic "JBPKEND1"
 * </pre>
 * A sealed pack is exactly {@code F + 48 N + 64} bytes. The footer lets the catalog be rebuilt from the packs
 * without reading the records; if a footer is damaged, the records are scanned instead (each carries its id and a
 * checksum). In plaintext even when encrypted: the pack id, record sizes and count, chunk ids (keyed, so they
 * reveal only equality of chunks within this repository) and raw lengths.
 */
final class PackFormat {
    static final int MAGIC = 0x4A42504B;
    static final int VERSION = 1;
    static final int HEADER_SIZE = 32;
    static final int FLAG_ENCRYPTED = 1;

    static final int RECORD_MAGIC = 0x4A424352;
    static final int RECORD_HEADER_SIZE = 52;
    static final int RECORD_CRC_OFFSET = 48;
    static final byte TYPE_CHUNK = 1;
    static final byte CODEC_STORED = 0;
    static final byte CODEC_ZSTD = 1;
    static final int GCM_NONCE = 12;
    static final int GCM_TAG = 16;
    static final int GCM_OVERHEAD = GCM_NONCE + GCM_TAG;

    static final int FOOTER_ENTRY_SIZE = 48;
    static final int TRAILER_SIZE = 64;
    static final long TRAILER_MAGIC = 0x4A42504B454E4431L; // "JBPKEND1"

    /** Records are at most this long: a header and a chunk of the largest size that did not compress, sealed. */
    static final int MAX_RECORD_SIZE = RECORD_HEADER_SIZE + RepositoryOptions.MAX_CHUNK_SIZE + GCM_OVERHEAD;

    static final String DIR = "packs";
    static final String SUFFIX = ".pack";

    private PackFormat() {
    }

    /** {@code packs/<hh>/<name>.pack}. */
    static Path path(Path repoDir, String name) {
        return repoDir.resolve(DIR).resolve(name.substring(0, 2)).resolve(name + SUFFIX);
    }

    /** Whether {@code s} is a well-formed pack name (32 lowercase hex characters). */
    static boolean isName(String s) {
        if (s.length() != 32) {
            return false;
        }
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (!(c >= '0' && c <= '9' || c >= 'a' && c <= 'f')) {
                return false;
            }
        }
        return true;
    }
}
