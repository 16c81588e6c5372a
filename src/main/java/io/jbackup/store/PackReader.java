package io.jbackup.store;

import io.jbackup.catalog.ChunkRow;
import io.jbackup.model.RepositoryException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.function.Supplier;

/** Reads what a sealed pack says about itself (format: {@link PackFormat}): its footer, or failing that its records. */
final class PackReader {
    private static final Logger LOG = LoggerFactory.getLogger(PackReader.class);
    private static final int MAX_ENTRIES = 1 << 24;

    private PackReader() {
    }

    /** The chunks of a pack with their positions. */
    record Contents(String name, long fileSize, List<ChunkRow> entries) {
    }

    /** {@link #readFooter(Storage.Ranged, String, Supplier, boolean)} of a local pack file. */
    static Contents readFooter(java.nio.file.Path file, String name, Supplier<MetaMac> macs, boolean encrypted)
        throws IOException {
        try (Storage.Ranged in = Storage.rangedFile(file)) {
            return readFooter(in, name, macs, encrypted);
        }
    }

    /** Reads and verifies the footer (bounds, MAC, record layout) of the sealed pack {@code name}. */
    static Contents readFooter(Storage.Ranged ch, String name, Supplier<MetaMac> macs, boolean encrypted)
        throws IOException {
        String file = ch.describe();
        {
            long size = ch.size();
            if (size < PackFormat.HEADER_SIZE + PackFormat.TRAILER_SIZE) {
                throw corrupt(file, "is " + size + " bytes, too short for a sealed pack");
            }
            ByteBuffer header = ByteBuffer.allocate(PackFormat.HEADER_SIZE);
            ch.readFully(header, 0);
            checkHeader(file, name, header.array(), encrypted);
            ByteBuffer trailer = ByteBuffer.allocate(PackFormat.TRAILER_SIZE);
            ch.readFully(trailer, size - PackFormat.TRAILER_SIZE);
            trailer.flip();
            long footerOffset = trailer.getLong(0);
            int count = trailer.getInt(8);
            long magic = trailer.getLong(56);
            if (magic != PackFormat.TRAILER_MAGIC) {
                throw corrupt(file, "has no trailer (the pack was not sealed, or its end is damaged)");
            }
            long minRecords = PackFormat.RECORD_HEADER_SIZE;
            if (count < 1 || count > MAX_ENTRIES || footerOffset < PackFormat.HEADER_SIZE + minRecords * count
                || footerOffset + (long) count * PackFormat.FOOTER_ENTRY_SIZE + PackFormat.TRAILER_SIZE != size) {
                throw corrupt(file, "has an inconsistent trailer (footer offset " + footerOffset + ", " + count
                    + " entries, file size " + size + ")");
            }
            ByteBuffer footer = ByteBuffer.allocate(count * PackFormat.FOOTER_ENTRY_SIZE);
            ch.readFully(footer, footerOffset);
            byte[] mac = macs.get().update(header.array()).update(footer.array())
                .update(trailer.array(), 0, 16).finish();
            if (!MessageDigest.isEqual(mac, Arrays.copyOfRange(trailer.array(), 16, 48))) {
                throw corrupt(file, "fails its footer " + (encrypted ? "MAC" : "checksum"));
            }
            footer.flip();
            List<ChunkRow> rows = new ArrayList<>(count);
            long expectOffset = PackFormat.HEADER_SIZE;
            for (int i = 0; i < count; i++) {
                byte[] id = new byte[ChunkId.LENGTH];
                footer.get(id);
                long off = footer.getLong();
                int len = footer.getInt();
                int raw = footer.getInt();
                if (off != expectOffset || len < PackFormat.RECORD_HEADER_SIZE + 1 || len > PackFormat.MAX_RECORD_SIZE
                    || raw < 1 || raw > RepositoryOptions.MAX_CHUNK_SIZE) {
                    throw corrupt(file, "footer entry " + i + " is inconsistent (offset " + off + ", expected "
                        + expectOffset + "; length " + len + "; raw length " + raw + ")");
                }
                rows.add(new ChunkRow(id, off, len, raw));
                expectOffset += len;
            }
            if (expectOffset != footerOffset) {
                throw corrupt(file, "records end at " + expectOffset + " but the footer starts at " + footerOffset);
            }
            return new Contents(name, size, rows);
        }
    }

    private static void checkHeader(String file, String name, byte[] h, boolean encrypted) throws RepositoryException {
        ByteBuffer b = ByteBuffer.wrap(h);
        if (b.getInt(0) != PackFormat.MAGIC) {
            throw corrupt(file, "is not a jbackup pack (bad magic)");
        }
        if (b.getShort(4) != PackFormat.VERSION) {
            throw corrupt(file, "has pack format version " + b.getShort(4) + " (this jbackup reads " + PackFormat.VERSION
                + ")");
        }
        boolean enc = (b.getShort(6) & PackFormat.FLAG_ENCRYPTED) != 0;
        if (enc != encrypted) {
            throw corrupt(file, enc ? "is encrypted but the repository is not" : "is not encrypted but the repository is");
        }
        String id = HexFormat.of().formatHex(h, 8, 24);
        if (!id.equals(name)) {
            throw corrupt(file, "has pack id " + id + " in its header, not its name");
        }
    }

    /**
     * Reads the records of a pack one by one, fully checking each (checksum, tag, decompression, digest), and
     * returns those before the first damaged one. Used when the footer cannot be trusted.
     */
    static Contents scanRecords(Storage.Ranged ch, String name, ChunkCodec codec) throws IOException {
        List<ChunkRow> rows = new ArrayList<>();
        String file = ch.describe();
        {
            long size = ch.size();
            ByteBuffer header = ByteBuffer.allocate(PackFormat.HEADER_SIZE);
            if (size < PackFormat.HEADER_SIZE) {
                throw corrupt(file, "is " + size + " bytes, shorter than a pack header");
            }
            ch.readFully(header, 0);
            checkHeader(file, name, header.array(), codec.encrypted());
            ChunkCodec.Scratch s = codec.borrow();
            try {
                long pos = PackFormat.HEADER_SIZE;
                while (pos + PackFormat.RECORD_HEADER_SIZE <= size) {
                    byte[] rec = s.record(PackFormat.RECORD_HEADER_SIZE);
                    ch.readFully(ByteBuffer.wrap(rec, 0, PackFormat.RECORD_HEADER_SIZE), pos);
                    int len;
                    try {
                        len = PackFormat.RECORD_HEADER_SIZE + codec.parseHeader(rec, 0, PackFormat.RECORD_HEADER_SIZE)[1];
                    } catch (ChunkCodec.RecordException e) {
                        break; // the footer, or damage: stop here
                    }
                    if (pos + len > size) {
                        break;
                    }
                    rec = s.record(len);
                    ch.readFully(ByteBuffer.wrap(rec, 0, len), pos);
                    try {
                        codec.decode(s, rec, len, null, -1);
                    } catch (ChunkCodec.RecordException e) {
                        LOG.warn("pack {}: record at offset {} is damaged ({}); scanning stops there", file, pos,
                            e.getMessage());
                        break;
                    }
                    rows.add(new ChunkRow(ChunkCodec.headerId(rec, 0), pos, len, ByteBuffer.wrap(rec).getInt(40)));
                    pos += len;
                }
            } finally {
                codec.release(s);
            }
            return new Contents(name, size, rows);
        }
    }

    private static RepositoryException corrupt(String file, String what) {
        return new RepositoryException("pack " + file + " " + what);
    }
}
