package io.jbackup.nbd.protocol;

import java.util.List;

/**
 * A transmission-phase message decoded by {@link ReplyDecoder}. Payloads that carry export data (a successful
 * simple READ reply, an {@code OFFSET_DATA} chunk) are not buffered: the header record is followed by one or more
 * {@link ReplyData} pieces that together hold exactly the announced number of bytes.
 */
public sealed interface NbdReply permits NbdReply.Simple, NbdReply.OffsetData, NbdReply.OffsetHole,
    NbdReply.BlockStatus, NbdReply.Error, NbdReply.None, ReplyData {

    /** The cookie the server echoed. */
    long cookie();

    /**
     * Whether the reply to the request is complete after this message: a simple reply without data, the last
     * {@link ReplyData} piece of a final chunk, or a payload-free chunk with {@code NBD_REPLY_FLAG_DONE}.
     */
    boolean done();

    /**
     * A simple reply: {@code 0x67446698(4) error(4) cookie(8)}, followed by {@code dataLength} bytes of READ data
     * (as {@link ReplyData}) when the error is zero and the request was a READ.
     */
    record Simple(long cookie, NbdError error, long dataLength) implements NbdReply {
        @Override
        public boolean done() {
            return dataLength == 0;
        }
    }

    /** {@code NBD_REPLY_TYPE_OFFSET_DATA}: offset(8), then {@code dataLength} bytes as {@link ReplyData}. */
    record OffsetData(long cookie, int flags, long offset, long dataLength) implements NbdReply {
        @Override
        public boolean done() {
            return false;
        }
    }

    /** {@code NBD_REPLY_TYPE_OFFSET_HOLE}: offset(8) hole-size(4, nonzero); the range reads as zeroes. */
    record OffsetHole(long cookie, int flags, long offset, long length) implements NbdReply {
        @Override
        public boolean done() {
            return (flags & NbdConstants.REPLY_FLAG_DONE) != 0;
        }
    }

    /** {@code NBD_REPLY_TYPE_BLOCK_STATUS}: context-id(4), then descriptors of length(4, nonzero) status(4). */
    record BlockStatus(long cookie, int flags, int contextId, List<BlockDescriptor> descriptors) implements NbdReply {
        public BlockStatus {
            descriptors = descriptors instanceof PackedDescriptors ? descriptors : List.copyOf(descriptors);
        }

        @Override
        public boolean done() {
            return (flags & NbdConstants.REPLY_FLAG_DONE) != 0;
        }
    }

    /**
     * An error chunk: {@code NBD_REPLY_TYPE_ERROR} (error(4) message-length(2) message) or
     * {@code NBD_REPLY_TYPE_ERROR_OFFSET} (the same plus offset(8)), or an unknown type with bit 15 set.
     *
     * @param offset the offset of {@code ERROR_OFFSET}, or -1
     */
    record Error(long cookie, int flags, NbdReplyChunkType type, NbdError error, String message, long offset)
        implements NbdReply {
        @Override
        public boolean done() {
            return (flags & NbdConstants.REPLY_FLAG_DONE) != 0;
        }
    }

    /** {@code NBD_REPLY_TYPE_NONE}: length 0, always final. */
    record None(long cookie, int flags) implements NbdReply {
        @Override
        public boolean done() {
            return true;
        }
    }

    /**
     * One block-status descriptor: {@code length} bytes with {@code status} (unsigned 32-bit values from
     * {@code BLOCK_STATUS}; 64-bit from {@code BLOCK_STATUS_EXT}, the length positive).
     */
    record BlockDescriptor(long length, long status) {
    }

    /** An immutable list of descriptors stored as packed pairs of longs (16 bytes each, no object per entry). */
    final class PackedDescriptors extends java.util.AbstractList<BlockDescriptor> implements java.util.RandomAccess {
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
            java.util.Objects.checkIndex(index, size());
            return new BlockDescriptor(pairs[2 * index], pairs[2 * index + 1]);
        }

        @Override
        public int size() {
            return pairs.length / 2;
        }
    }
}
