package io.jbackup.nbd.server;

import io.jbackup.nbd.protocol.NbdCommand;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdError;
import io.jbackup.nbd.protocol.NbdRequest;
import java.util.List;

/**
 * The rules a transmission request must keep before it runs on the export (doc/proto.md, "Request types"): known
 * command, only the flags that command and the negotiated mode allow, within the export, aligned to its minimum
 * block size (the end of the export excepted), within the payload limit, and no change to a read-only export. A
 * request that breaks a rule is {@link Refused} with the error to reply.
 *
 * @param exportName the export's name (in messages)
 * @param readOnly   the export is read-only
 * @param size       the export's size in bytes
 * @param minBlock   the export's minimum block size
 * @param maxPayload the largest READ or WRITE payload announced
 * @param structured structured replies (and so {@code NBD_CMD_FLAG_DF}) were negotiated
 * @param extended   extended headers (and so {@code NBD_CMD_FLAG_PAYLOAD_LEN}) were negotiated
 */
record RequestRules(String exportName, boolean readOnly, long size, int minBlock, int maxPayload, boolean structured,
                    boolean extended) {

    static RequestRules of(NbdExport export, int maxPayload, boolean structured, boolean extended) {
        return new RequestRules(export.name(), export.readOnly(), export.size(), export.minBlockSize(), maxPayload,
            structured, extended);
    }

    /** A request that fails validation. */
    static final class Refused extends Exception {
        private static final long serialVersionUID = 1L;
        final transient NbdError error;

        Refused(NbdError error, String message) {
            super(message, null, false, false);
            this.error = error;
        }
    }

    /** The effect range and contexts of a valid {@code NBD_CMD_BLOCK_STATUS}. */
    record BlockStatusQuery(long offset, long length, List<TransmissionHandler.Context> contexts) {
    }

    /** The command is supported and carries only flags it allows. */
    void checkCommand(NbdRequest r) throws Refused {
        NbdCommand cmd = r.command();
        int allowed = NbdConstants.CMD_FLAG_FUA;
        if (cmd.equals(NbdCommand.READ) && structured) {
            allowed |= NbdConstants.CMD_FLAG_DF;
        } else if (cmd.equals(NbdCommand.WRITE_ZEROES)) {
            allowed |= NbdConstants.CMD_FLAG_NO_HOLE;
        } else if (cmd.equals(NbdCommand.BLOCK_STATUS)) {
            allowed |= NbdConstants.CMD_FLAG_REQ_ONE;
        }
        if (extended && (cmd.equals(NbdCommand.WRITE) || cmd.equals(NbdCommand.BLOCK_STATUS))) {
            allowed |= NbdConstants.CMD_FLAG_PAYLOAD_LEN;
        }
        if (!cmd.isKnown() || cmd.equals(NbdCommand.RESIZE)) {
            throw new Refused(NbdError.EINVAL, "unsupported command " + cmd);
        }
        if ((r.flags() & ~allowed) != 0) {
            throw new Refused(NbdError.EINVAL, "unsupported flags 0x" + Integer.toHexString(r.flags() & ~allowed)
                + " for " + cmd.name());
        }
    }

    /** READ: in range, within the payload limit, aligned. */
    void checkRead(NbdRequest r) throws Refused {
        checkRange(r, NbdError.EINVAL);
        if (r.length() > maxPayload) {
            throw new Refused(NbdError.EINVAL, "read of " + r.length() + " bytes exceeds the maximum payload of "
                + maxPayload);
        }
        checkAlignment(r);
    }

    /** WRITE: writable, its payload was kept (within the limit), in range (else ENOSPC), aligned. */
    void checkWrite(NbdRequest r) throws Refused {
        checkWritable();
        if (r.payloadSkipped()) {
            throw new Refused(NbdError.EINVAL, "write of " + r.length() + " bytes exceeds the maximum payload of "
                + maxPayload);
        }
        checkRange(r, NbdError.ENOSPC);
        checkAlignment(r);
    }

    void checkFlush(NbdRequest r) throws Refused {
        if (r.offset() != 0 || r.length() != 0) {
            throw new Refused(NbdError.EINVAL, "FLUSH needs offset and length 0");
        }
    }

    void checkWritable() throws Refused {
        if (readOnly) {
            throw new Refused(NbdError.EPERM, "export '" + exportName + "' is read-only");
        }
    }

    void checkRange(NbdRequest r, NbdError error) throws Refused {
        long offset = r.offset();
        if (offset < 0 || offset > size || r.length() < 0 || r.length() > size - offset) {
            throw new Refused(error, r.command().name() + " of " + r.length() + " bytes at offset "
                + Long.toUnsignedString(offset) + " is beyond the end of the export (" + size + " bytes)");
        }
    }

    void checkAlignment(NbdRequest r) throws Refused {
        if (minBlock > 1) {
            long mask = minBlock - 1;
            if ((r.offset() & mask) != 0 || ((r.length() & mask) != 0 && r.offset() + r.length() != size)) {
                throw new Refused(NbdError.EINVAL, r.command().name() + " at offset " + r.offset() + " length "
                    + r.length() + " is not aligned to the minimum block size " + minBlock);
            }
        }
    }

    /**
     * BLOCK_STATUS: a context selected, a valid payload if it has one (which narrows the contexts and gives the
     * effect length), a non-empty aligned range within the export.
     */
    BlockStatusQuery checkBlockStatus(NbdRequest r, List<TransmissionHandler.Context> selected) throws Refused {
        if (selected.isEmpty()) {
            throw new Refused(NbdError.EINVAL, "BLOCK_STATUS needs a meta context selected with NBD_OPT_SET_META_CONTEXT"
                + " for this export");
        }
        List<TransmissionHandler.Context> contexts = selected;
        long length = r.length();
        if (r.hasFlag(NbdConstants.CMD_FLAG_PAYLOAD_LEN)) {
            StatusPayload p;
            try {
                p = StatusPayload.parse(r, selected);
            } catch (IllegalArgumentException e) {
                throw new Refused(NbdError.EINVAL, e.getMessage());
            }
            length = p.effectLength();
            contexts = p.contexts();
        }
        long offset = r.offset();
        if (offset < 0 || offset > size || length < 0 || length > size - offset) {
            throw new Refused(NbdError.EINVAL, "BLOCK_STATUS of " + Long.toUnsignedString(length) + " bytes at offset "
                + Long.toUnsignedString(offset) + " is beyond the end of the export (" + size + " bytes)");
        }
        if (length == 0) {
            throw new Refused(NbdError.EINVAL, "BLOCK_STATUS of length 0");
        }
        if (minBlock > 1 && ((offset | length) & (minBlock - 1)) != 0 && offset + length != size) {
            throw new Refused(NbdError.EINVAL, "BLOCK_STATUS at offset " + offset + " length " + length
                + " is not aligned to the minimum block size " + minBlock);
        }
        return new BlockStatusQuery(offset, length, contexts);
    }
}
