package io.jbackup.nbd.server;

import io.jbackup.nbd.protocol.NbdRequest;
import io.netty.buffer.ByteBuf;
import java.util.ArrayList;
import java.util.List;

/**
 * The payload of an extended {@code NBD_CMD_BLOCK_STATUS} with {@code NBD_CMD_FLAG_PAYLOAD_LEN}
 * ({@code NBD_FLAG_BLOCK_STATUS_PAYLOAD}): {@code effect-length(8)} then one or more {@code context-id(4)}, each a
 * context selected with {@code NBD_OPT_SET_META_CONTEXT}, none twice. The reply has one chunk per listed context.
 *
 * @param effectLength the length the status is asked for (unsigned 64 bit; negative above 2^63 - 1)
 * @param contexts     the listed contexts, in the payload's order
 */
record StatusPayload(long effectLength, List<TransmissionHandler.Context> contexts) {

    /**
     * Reads the payload of {@code r} (it stays owned by the request).
     *
     * @throws IllegalArgumentException naming what is wrong: skipped as too long, a length that is not 8 + 4n with
     *                                  n at least 1, an id that was not selected or is listed twice
     */
    static StatusPayload parse(NbdRequest r, List<TransmissionHandler.Context> selected) {
        ByteBuf p = r.payload();
        if (p == null) {
            throw new IllegalArgumentException("BLOCK_STATUS payload of " + Long.toUnsignedString(r.length())
                + " bytes is longer than this server accepts");
        }
        int len = p.readableBytes();
        if (len < 12 || (len - 8) % 4 != 0) {
            throw new IllegalArgumentException("BLOCK_STATUS payload of " + len + " bytes (expected: effect length(8) "
                + "and one or more context ids(4))");
        }
        int at = p.readerIndex();
        long effect = p.getLong(at);
        List<TransmissionHandler.Context> out = new ArrayList<>((len - 8) / 4);
        for (int i = at + 8; i < at + len; i += 4) {
            int id = p.getInt(i);
            TransmissionHandler.Context found = null;
            for (TransmissionHandler.Context c : selected) {
                if (c.id() == id) {
                    found = c;
                }
            }
            if (found == null) {
                throw new IllegalArgumentException("BLOCK_STATUS payload names context id " + id + ", which was not "
                    + "selected with NBD_OPT_SET_META_CONTEXT");
            }
            if (out.contains(found)) {
                throw new IllegalArgumentException("BLOCK_STATUS payload names context id " + id + " twice");
            }
            out.add(found);
        }
        return new StatusPayload(effect, List.copyOf(out));
    }
}
