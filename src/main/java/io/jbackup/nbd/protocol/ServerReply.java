package io.jbackup.nbd.protocol;

import io.netty.buffer.ByteBuf;
import java.util.List;

/**
 * A transmission reply, or one chunk of a structured reply, as written by the server and encoded by
 * {@link ServerReplyEncoder}. Buffers held by a reply are owned by it until written (the encoder passes them on to
 * the transport, which releases them).
 */
public sealed interface ServerReply {
    /** The cookie of the request this replies to. */
    long cookie();

    /**
     * Simple reply {@code 0x67446698(4) error(4) cookie(8)}, followed by {@code data} (READ without structured
     * replies only; null otherwise).
     */
    record Simple(long cookie, int error, ByteBuf data) implements ServerReply {
        public Simple(long cookie, NbdError error) {
            this(cookie, error.code(), null);
        }
    }

    /** {@code NBD_REPLY_TYPE_OFFSET_DATA}: {@code offset(8) data}. */
    record OffsetData(long cookie, boolean done, long offset, ByteBuf data) implements ServerReply {
    }

    /** {@code NBD_REPLY_TYPE_OFFSET_HOLE}: {@code offset(8) hole-size(4)}. */
    record OffsetHole(long cookie, boolean done, long offset, int length) implements ServerReply {
        public OffsetHole {
            if (length <= 0) {
                throw new IllegalArgumentException("hole length " + length + " (expected: > 0)");
            }
        }
    }

    /**
     * {@code NBD_REPLY_TYPE_BLOCK_STATUS}: {@code context-id(4)} then {@code length(4) status(4)} per extent.
     * Extent lengths must fit in 32 bits; only lengths and flags are sent.
     */
    record BlockStatus(long cookie, boolean done, int contextId, List<Extent> extents) implements ServerReply {
        public BlockStatus {
            if (extents.isEmpty()) {
                throw new IllegalArgumentException("block status chunk needs at least one extent");
            }
        }
    }

    /** {@code NBD_REPLY_TYPE_ERROR}: {@code error(4) message-length(2) message}. */
    record Error(long cookie, boolean done, int error, String message) implements ServerReply {
        public Error {
            if (error == 0) {
                throw new IllegalArgumentException("error chunk needs a nonzero error");
            }
        }
    }

    /** {@code NBD_REPLY_TYPE_NONE} with the DONE flag: the request succeeded (if no error chunk came before). */
    record None(long cookie) implements ServerReply {
    }
}
