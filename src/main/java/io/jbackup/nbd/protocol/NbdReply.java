package io.jbackup.nbd.protocol;

import java.util.AbstractList;
import java.util.List;
import java.util.Objects;
import java.util.RandomAccess;

/**
 * A transmission-phase reply message, the one reply type family of both sides: the server writes these and
 * {@link ServerReplyEncoder} encodes them; the client gets them from {@link ReplyDecoder}. A reply that carries export
 * data (a successful simple READ reply, an {@code OFFSET_DATA} chunk) is a header record that announces the number of
 * bytes, followed by one or more {@link ReplyData} pieces that together hold exactly that many: the client's decoder
 * passes them on as they arrive (a 32 MiB read is never held whole), and the server's encoder writes the pieces'
 * buffers as they are (never copied). All other replies are whole.
 *
 * <p>Flags are those of the reply chunk ({@code NbdConstants.REPLY_FLAG_DONE}); error values are {@link NbdError}s.
 * The records check what the wire format requires, so what an encoder is given can always be sent.
 */
public sealed interface NbdReply permits NbdReply.Simple, NbdReply.OffsetData, NbdReply.OffsetHole,
    NbdReply.BlockStatus, NbdReply.Error, NbdReply.None, ReplyData {

    /** The cookie of the request this replies to. */
    long cookie();

    /**
     * Whether the reply to the request is complete after this message: a simple reply without data, the last
     * {@link ReplyData} piece of a final chunk, or a payload-free chunk with {@code NBD_REPLY_FLAG_DONE}.
     */
    boolean done();

    /** Chunk flags with {@code NBD_REPLY_FLAG_DONE} set if {@code done}. */
    static int flags(boolean done) {
        return done ? NbdConstants.REPLY_FLAG_DONE : 0;
    }

    /**
     * A simple reply: {@code 0x67446698(4) error(4) cookie(8)}, followed by {@code dataLength} bytes of READ data
     * (as {@link ReplyData}) when the error is zero and the request was a READ. Compact headers only: with extended
     * headers the server's encoder sends it as the equivalent chunk ({@code NONE}, {@code ERROR}, or a final
     * {@code OFFSET_DATA} at the request's offset).
     */
    record Simple(long cookie, NbdError error, long dataLength) implements NbdReply {
        public Simple {
            Objects.requireNonNull(error, "error");
            if (dataLength < 0 || (dataLength > 0 && error.code() != 0)) {
                throw new IllegalArgumentException("simple reply with error " + error + " and " + dataLength
                    + " data bytes (expected: data only without error)");
            }
        }

        /** A simple reply without data. */
        public Simple(long cookie, NbdError error) {
            this(cookie, error, 0);
        }

        @Override
        public boolean done() {
            return dataLength == 0;
        }
    }

    /** {@code NBD_REPLY_TYPE_OFFSET_DATA}: offset(8), then {@code dataLength} (at least 1) bytes as {@link ReplyData}. */
    record OffsetData(long cookie, int flags, long offset, long dataLength) implements NbdReply {
        public OffsetData {
            if (dataLength < 1) {
                throw new IllegalArgumentException("OFFSET_DATA chunk with " + dataLength + " data bytes (expected: > 0)");
            }
        }

        @Override
        public boolean done() {
            return false;
        }
    }

    /** {@code NBD_REPLY_TYPE_OFFSET_HOLE}: offset(8) hole-size(4, nonzero); the range reads as zeroes. */
    record OffsetHole(long cookie, int flags, long offset, long length) implements NbdReply {
        public OffsetHole {
            if (length <= 0 || length > 0xffffffffL) {
                throw new IllegalArgumentException("hole length " + length + " (expected: 1 to 2^32 - 1)");
            }
        }

        @Override
        public boolean done() {
            return (flags & NbdConstants.REPLY_FLAG_DONE) != 0;
        }
    }

    /**
     * Block status for one meta context: {@code NBD_REPLY_TYPE_BLOCK_STATUS} with compact headers (context-id(4),
     * then descriptors of length(4, nonzero) status(4)), {@code NBD_REPLY_TYPE_BLOCK_STATUS_EXT} with extended ones
     * (context-id(4) count(4), then descriptors of length(8, nonzero) status(8)). At least one descriptor.
     */
    record BlockStatus(long cookie, int flags, int contextId, List<BlockDescriptor> descriptors) implements NbdReply {
        public BlockStatus {
            descriptors = descriptors instanceof PackedDescriptors ? descriptors : List.copyOf(descriptors);
            if (descriptors.isEmpty()) {
                throw new IllegalArgumentException("block status chunk needs at least one descriptor");
            }
        }

        /** The chunk for consecutive {@code extents} (their lengths, and their flags as the status). */
        public static BlockStatus of(long cookie, int flags, int contextId, List<Extent> extents) {
            long[] pairs = new long[2 * extents.size()];
            for (int i = 0; i < extents.size(); i++) {
                Extent e = extents.get(i);
                pairs[2 * i] = e.length();
                pairs[2 * i + 1] = Integer.toUnsignedLong(e.flags());
            }
            return new BlockStatus(cookie, flags, contextId, new PackedDescriptors(pairs));
        }

        @Override
        public boolean done() {
            return (flags & NbdConstants.REPLY_FLAG_DONE) != 0;
        }
    }

    /**
     * An error chunk: {@code NBD_REPLY_TYPE_ERROR} (error(4) message-length(2) message) or
     * {@code NBD_REPLY_TYPE_ERROR_OFFSET} (the same plus offset(8)), or an unknown type with bit 15 set (decoded only).
     *
     * @param error   a nonzero error value
     * @param message UTF-8 on the wire, at most 4096 bytes (an encoder cuts a longer one); null reads as empty
     * @param offset  the offset of {@code ERROR_OFFSET} (0 to 2^63 - 1), or -1 for every other type
     */
    record Error(long cookie, int flags, NbdReplyChunkType type, NbdError error, String message, long offset)
        implements NbdReply {
        public Error {
            Objects.requireNonNull(type, "type");
            Objects.requireNonNull(error, "error");
            message = message == null ? "" : message;
            if (!type.isError() || error.code() == 0) {
                throw new IllegalArgumentException("error chunk of type " + type + " with error " + error
                    + " (expected: an error type and a nonzero error)");
            }
            if (type.equals(NbdReplyChunkType.ERROR_OFFSET) ? offset < 0 : offset != -1) {
                throw new IllegalArgumentException(type + " chunk with offset " + offset
                    + " (expected: >= 0 for ERROR_OFFSET, -1 otherwise)");
            }
        }

        /** An {@code NBD_REPLY_TYPE_ERROR} chunk. */
        public Error(long cookie, int flags, NbdError error, String message) {
            this(cookie, flags, NbdReplyChunkType.ERROR, error, message, -1);
        }

        @Override
        public boolean done() {
            return (flags & NbdConstants.REPLY_FLAG_DONE) != 0;
        }
    }

    /** {@code NBD_REPLY_TYPE_NONE}: length 0, always final (the DONE flag set). */
    record None(long cookie, int flags) implements NbdReply {
        public None {
            if ((flags & NbdConstants.REPLY_FLAG_DONE) == 0) {
                throw new IllegalArgumentException("NONE chunk with flags 0x" + Integer.toHexString(flags)
                    + " (expected: the DONE flag set)");
            }
        }

        /** The final NONE chunk: the request succeeded (if no error chunk came before). */
        public None(long cookie) {
            this(cookie, NbdConstants.REPLY_FLAG_DONE);
        }

        @Override
        public boolean done() {
            return true;
        }
    }

    /**
     * One block-status descriptor: {@code length} bytes with {@code status} (unsigned 32-bit values in
     * {@code BLOCK_STATUS}; 64-bit in {@code BLOCK_STATUS_EXT}, the length positive).
     */
    record BlockDescriptor(long length, long status) {
        public BlockDescriptor {
            if (length <= 0) {
                throw new IllegalArgumentException("descriptor length " + Long.toUnsignedString(length)
                    + " (expected: 1 to 2^63 - 1)");
            }
        }
    }

    /** An immutable list of descriptors stored as packed pairs of longs (16 bytes each, no object per entry). */
    final class PackedDescriptors extends AbstractList<BlockDescriptor> implements RandomAccess {
        private final long[] pairs;

        /** @param pairs length, status, length, status, ... (not copied: the caller hands it over) */
        public PackedDescriptors(long[] pairs) {
            if (pairs.length % 2 != 0) {
                throw new IllegalArgumentException("odd number of values: " + pairs.length);
            }
            this.pairs = pairs;
        }

        @Override
        public BlockDescriptor get(int index) {
            Objects.checkIndex(index, size());
            return new BlockDescriptor(pairs[2 * index], pairs[2 * index + 1]);
        }

        @Override
        public int size() {
            return pairs.length / 2;
        }
    }
}
