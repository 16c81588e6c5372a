package io.jbackup.nbd.client;

import io.jbackup.nbd.protocol.NbdConstants;

/**
 * What the server said about an export in {@code NBD_OPT_GO}/{@code NBD_OPT_INFO} (or {@code EXPORT_NAME}).
 *
 * @param name              the export name (canonical name if the server sent {@code NBD_INFO_NAME})
 * @param description       {@code NBD_INFO_DESCRIPTION}, or ""
 * @param size              export size in bytes, or -1 if unknown (a server without {@code NBD_OPT_INFO})
 * @param transmissionFlags {@code NBD_FLAG_*} transmission flags (16 bit)
 * @param minBlock          minimum block size (1 when the server did not send {@code NBD_INFO_BLOCK_SIZE})
 * @param preferredBlock    preferred block size (4096 by default)
 * @param maxBlock          maximum payload (32 MiB by default; "no limit" is capped at {@link Integer#MAX_VALUE})
 */
public record ExportInfo(String name, String description, long size, int transmissionFlags, int minBlock,
                         int preferredBlock, int maxBlock) {
    public static final int DEFAULT_MIN_BLOCK = 1;
    public static final int DEFAULT_PREFERRED_BLOCK = 4096;
    public static final int DEFAULT_MAX_BLOCK = 32 << 20;

    private boolean flag(int f) {
        return (transmissionFlags & f) != 0;
    }

    public boolean readOnly() {
        return flag(NbdConstants.TFLAG_READ_ONLY);
    }

    public boolean canFlush() {
        return flag(NbdConstants.TFLAG_SEND_FLUSH);
    }

    public boolean canFua() {
        return flag(NbdConstants.TFLAG_SEND_FUA);
    }

    public boolean rotational() {
        return flag(NbdConstants.TFLAG_ROTATIONAL);
    }

    public boolean canTrim() {
        return flag(NbdConstants.TFLAG_SEND_TRIM);
    }

    public boolean canWriteZeroes() {
        return flag(NbdConstants.TFLAG_SEND_WRITE_ZEROES);
    }

    public boolean canDf() {
        return flag(NbdConstants.TFLAG_SEND_DF);
    }

    public boolean canMultiConn() {
        return flag(NbdConstants.TFLAG_CAN_MULTI_CONN);
    }

    public boolean canCache() {
        return flag(NbdConstants.TFLAG_SEND_CACHE);
    }

    public boolean canFastZero() {
        return flag(NbdConstants.TFLAG_SEND_FAST_ZERO);
    }

    /** {@code NBD_FLAG_BLOCK_STATUS_PAYLOAD}: with extended headers, BLOCK_STATUS may name the contexts it wants. */
    public boolean canBlockStatusPayload() {
        return flag(NbdConstants.TFLAG_BLOCK_STATUS_PAYLOAD);
    }

    /** The flags as {@code HAS_FLAGS|READ_ONLY|...}. */
    public String flagNames() {
        return NbdConstants.transmissionFlagsToString(transmissionFlags);
    }
}
