package io.jbackup.nbd.client;

import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdInfoType;
import io.jbackup.nbd.protocol.NbdProtocolException;
import io.jbackup.nbd.protocol.OptionReply;

import java.util.List;

/**
 * Export information from the handshake's replies: the {@code NBD_INFO_*} replies of {@code NBD_OPT_GO} or
 * {@code NBD_OPT_INFO} (or the {@code EXPORT_NAME} reply), checked for what jbackup can address.
 */
final class InfoReplies {
    /** The information asked for with {@code NBD_OPT_GO} and {@code NBD_OPT_INFO}. */
    static final List<NbdInfoType> INFO_REQUESTS = List.of(NbdInfoType.BLOCK_SIZE, NbdInfoType.NAME,
        NbdInfoType.DESCRIPTION);

    private InfoReplies() {
    }

    /** Builds the export information from the INFO replies of {@code NBD_OPT_INFO} or {@code NBD_OPT_GO}. */
    static ExportInfo exportInfo(NbdUri uri, String name, String description, List<OptionReply> replies,
                                 boolean required) throws NbdProtocolException {
        OptionReply.InfoExport export = null;
        OptionReply.InfoBlockSize bs = null;
        String canonical = name;
        String desc = description;
        for (OptionReply r : replies) {
            if (r instanceof OptionReply.InfoExport e) {
                if (export != null && (export.size() != e.size()
                    || export.transmissionFlags() != e.transmissionFlags())) {
                    throw new NbdProtocolException("server " + uri + " sent NBD_INFO_EXPORT twice for export '" + name
                        + "' with different values (size " + Long.toUnsignedString(export.size()) + " then "
                        + Long.toUnsignedString(e.size()) + ", flags 0x" + Integer.toHexString(
                        export.transmissionFlags()) + " then 0x" + Integer.toHexString(e.transmissionFlags()) + ")");
                }
                export = e;
            } else if (r instanceof OptionReply.InfoBlockSize b) {
                if (bs != null && !bs.equals(b)) {
                    throw new NbdProtocolException("server " + uri + " sent NBD_INFO_BLOCK_SIZE twice for export '"
                        + name + "' with different values (" + bs + " then " + b + ")");
                }
                bs = b;
            } else if (r instanceof OptionReply.InfoName n) {
                canonical = n.name();
            } else if (r instanceof OptionReply.InfoDescription d) {
                desc = d.description();
            }
        }
        if (export == null) {
            if (required) {
                throw new NbdProtocolException("server " + uri + " acknowledged NBD_OPT_GO without sending "
                    + "NBD_INFO_EXPORT (size and flags)");
            }
            return new ExportInfo(canonical, desc, -1, 0, ExportInfo.DEFAULT_MIN_BLOCK,
                ExportInfo.DEFAULT_PREFERRED_BLOCK, ExportInfo.DEFAULT_MAX_BLOCK);
        }
        int min = ExportInfo.DEFAULT_MIN_BLOCK;
        int pref = ExportInfo.DEFAULT_PREFERRED_BLOCK;
        int max = ExportInfo.DEFAULT_MAX_BLOCK;
        if (bs != null) {
            if (bs.minimum() < 1 || bs.minimum() > 65536 || Long.bitCount(bs.minimum()) != 1
                || Long.bitCount(bs.preferred()) != 1 || bs.preferred() < Math.max(bs.minimum(), 512)
                || bs.maximum() < bs.preferred()) {
                throw new NbdProtocolException("server " + uri + " sent invalid block sizes for export '" + name
                    + "': minimum " + bs.minimum() + ", preferred " + bs.preferred() + ", maximum " + bs.maximum()
                    + " (doc/proto.md: the minimum is a power of 2 up to 64 KiB, the preferred a power of 2 of at "
                    + "least max(minimum, 512), the maximum at least the preferred)");
            }
            min = (int) bs.minimum();
            pref = (int) Math.min(bs.preferred(), 1 << 30);
            max = (int) Math.min(bs.maximum(), Integer.MAX_VALUE);
        }
        return validate(uri, new ExportInfo(canonical, desc, export.size(), effectiveFlags(export.transmissionFlags()),
            min, pref, max));
    }

    /**
     * Refuses sizes jbackup cannot address: above 2^63 - 1 (negative as a Java long), or not a multiple of the
     * minimum block size (the tail could not be read with requests the server must accept).
     */
    static ExportInfo validate(NbdUri uri, ExportInfo info) throws NbdProtocolException {
        if (info.size() < 0) {
            throw new NbdProtocolException("server " + uri + " reports export size " + Long.toUnsignedString(
                info.size()) + " for '" + info.name() + "', more than jbackup supports (2^63 - 1)");
        }
        if (info.size() % info.minBlock() != 0) {
            throw new NbdProtocolException("server " + uri + " reports export size " + info.size() + " for '"
                + info.name() + "', which is not a multiple of its minimum block size " + info.minBlock()
                + ": the last " + info.size() % info.minBlock() + " bytes could not be read with aligned requests");
        }
        return info;
    }

    static int effectiveFlags(int flags) {
        // without HAS_FLAGS the other bits carry no meaning
        return (flags & NbdConstants.TFLAG_HAS_FLAGS) != 0 ? flags : 0;
    }
}
