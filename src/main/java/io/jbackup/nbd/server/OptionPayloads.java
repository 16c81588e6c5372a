package io.jbackup.nbd.server;

import io.jbackup.nbd.protocol.NbdConstants;
import io.netty.buffer.ByteBuf;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * Decodes the data of the options that carry some into values, bounding every length read from it before use
 * (doc/proto.md, "Option types"; all integers big-endian):
 * <pre>
 *   NBD_OPT_EXPORT_NAME             name (the whole data)
 *   NBD_OPT_INFO, NBD_OPT_GO        nameLength 4, name, count 2, count x infoType 2
 *   NBD_OPT_LIST_META_CONTEXT,
 *   NBD_OPT_SET_META_CONTEXT        nameLength 4, name, count 4, count x { queryLength 4, query }
 * </pre>
 * Strings are UTF-8 of at most {@link NbdConstants#MAX_STRING_LENGTH} bytes without NUL. Malformed data is a
 * {@link BadOption} whose message the handler sends back with {@code NBD_REP_ERR_INVALID}.
 */
final class OptionPayloads {
    private OptionPayloads() {
    }

    /** {@code NBD_OPT_INFO} or {@code NBD_OPT_GO}: the export and the information types asked for, in order. */
    record InfoRequest(String name, Set<Integer> requested) {
    }

    /** {@code NBD_OPT_LIST_META_CONTEXT} or {@code NBD_OPT_SET_META_CONTEXT}: the export and its queries. */
    record MetaContextRequest(String exportName, List<String> queries) {
    }

    /** The data of {@code NBD_OPT_EXPORT_NAME}: all of it is the name. */
    static String exportName(ByteBuf data) throws BadOption {
        return readString(data, data.readableBytes(), "export name");
    }

    static InfoRequest info(ByteBuf data) throws BadOption {
        Set<Integer> requested = new LinkedHashSet<>();
        if (data.readableBytes() < 6) {
            throw new BadOption("option data of " + data.readableBytes() + " bytes (expected: >= 6)");
        }
        long nameLen = data.readUnsignedInt();
        if (nameLen > data.readableBytes() - 2) {
            throw new BadOption("export name length " + nameLen + " exceeds the option data");
        }
        String name = readString(data, (int) nameLen, "export name");
        int count = data.readUnsignedShort();
        if (data.readableBytes() != 2 * count) {
            throw new BadOption(count + " information requests need " + 2 * count + " bytes, "
                + data.readableBytes() + " present");
        }
        for (int i = 0; i < count; i++) {
            requested.add(data.readUnsignedShort());
        }
        return new InfoRequest(name, requested);
    }

    static MetaContextRequest metaContext(ByteBuf data) throws BadOption {
        List<String> queries = new ArrayList<>();
        if (data.readableBytes() < 8) {
            throw new BadOption("option data of " + data.readableBytes() + " bytes (expected: >= 8)");
        }
        long nameLen = data.readUnsignedInt();
        if (nameLen > data.readableBytes() - 4) {
            throw new BadOption("export name length " + nameLen + " exceeds the option data");
        }
        String exportName = readString(data, (int) nameLen, "export name");
        long count = data.readUnsignedInt();
        for (long i = 0; i < count; i++) {
            if (data.readableBytes() < 4) {
                throw new BadOption("query " + i + " of " + count + " is missing");
            }
            long qlen = data.readUnsignedInt();
            if (qlen > data.readableBytes()) {
                throw new BadOption("query length " + qlen + " exceeds the option data");
            }
            queries.add(readString(data, (int) qlen, "query"));
        }
        if (data.isReadable()) {
            throw new BadOption(data.readableBytes() + " bytes after the last query");
        }
        return new MetaContextRequest(exportName, queries);
    }

    /** Reads a UTF-8 protocol string of {@code len} bytes: at most 4096 bytes, valid UTF-8, no NUL. */
    private static String readString(ByteBuf data, int len, String what) throws BadOption {
        if (len > NbdConstants.MAX_STRING_LENGTH) {
            throw new BadOption(what + " of " + len + " bytes (expected: <= " + NbdConstants.MAX_STRING_LENGTH + ")");
        }
        ByteBuffer b = data.nioBuffer(data.readerIndex(), len);
        data.skipBytes(len);
        try {
            String s = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT).decode(b).toString();
            if (s.indexOf('\0') >= 0) {
                throw new BadOption(what + " contains a NUL character");
            }
            return s;
        } catch (CharacterCodingException e) {
            throw new BadOption(what + " is not valid UTF-8");
        }
    }

    /** A syntactically invalid option (answered with ERR_INVALID). */
    static final class BadOption extends Exception {
        private static final long serialVersionUID = 1L;

        BadOption(String message) {
            super(message, null, false, false);
        }
    }
}
