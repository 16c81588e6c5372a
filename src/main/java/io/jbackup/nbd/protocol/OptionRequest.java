package io.jbackup.nbd.protocol;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;

/**
 * One client option in fixed newstyle negotiation: {@code IHAVEOPT(8) option(4) length(4) data(length)}.
 * The static factories build the data of each option exactly as {@code doc/proto.md} lays it out.
 *
 * @param option the option
 * @param data   the option data (may be empty, never null); not copied
 */
public record OptionRequest(NbdOption option, byte[] data) {
    public OptionRequest {
        if (option == null || data == null) {
            throw new IllegalArgumentException("option and data must be set");
        }
    }

    /** {@code NBD_OPT_EXPORT_NAME}: the data is the export name. */
    public static OptionRequest exportName(String export) {
        return new OptionRequest(NbdOption.EXPORT_NAME, utf8(export, "export name"));
    }

    /** {@code NBD_OPT_ABORT}, no data. */
    public static OptionRequest abort() {
        return new OptionRequest(NbdOption.ABORT, new byte[0]);
    }

    /** {@code NBD_OPT_LIST}, no data. */
    public static OptionRequest list() {
        return new OptionRequest(NbdOption.LIST, new byte[0]);
    }

    /** {@code NBD_OPT_STARTTLS}, no data. */
    public static OptionRequest startTls() {
        return new OptionRequest(NbdOption.STARTTLS, new byte[0]);
    }

    /** {@code NBD_OPT_STRUCTURED_REPLY}, no data. */
    public static OptionRequest structuredReply() {
        return new OptionRequest(NbdOption.STRUCTURED_REPLY, new byte[0]);
    }

    /** {@code NBD_OPT_EXTENDED_HEADERS}, no data. */
    public static OptionRequest extendedHeaders() {
        return new OptionRequest(NbdOption.EXTENDED_HEADERS, new byte[0]);
    }

    /** {@code NBD_OPT_INFO}: name-length(4) name count(2) count x info-type(2). */
    public static OptionRequest info(String export, List<NbdInfoType> requests) {
        return new OptionRequest(NbdOption.INFO, infoData(export, requests));
    }

    /** {@code NBD_OPT_GO}: same data as {@link #info}. */
    public static OptionRequest go(String export, List<NbdInfoType> requests) {
        return new OptionRequest(NbdOption.GO, infoData(export, requests));
    }

    /** {@code NBD_OPT_LIST_META_CONTEXT}: export-name-length(4) name query-count(4) queries (length(4) string). */
    public static OptionRequest listMetaContext(String export, List<String> queries) {
        return new OptionRequest(NbdOption.LIST_META_CONTEXT, metaContextData(export, queries));
    }

    /** {@code NBD_OPT_SET_META_CONTEXT}: same data as {@link #listMetaContext}. */
    public static OptionRequest setMetaContext(String export, List<String> queries) {
        return new OptionRequest(NbdOption.SET_META_CONTEXT, metaContextData(export, queries));
    }

    private static byte[] infoData(String export, List<NbdInfoType> requests) {
        byte[] name = utf8(export, "export name");
        if (requests.size() > 0xffff) {
            throw new IllegalArgumentException("too many info requests: " + requests.size());
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream(4 + name.length + 2 + 2 * requests.size());
        writeInt(out, name.length);
        out.writeBytes(name);
        writeShort(out, requests.size());
        for (NbdInfoType t : requests) {
            writeShort(out, t.code());
        }
        return out.toByteArray();
    }

    private static byte[] metaContextData(String export, List<String> queries) {
        byte[] name = utf8(export, "export name");
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        writeInt(out, name.length);
        out.writeBytes(name);
        writeInt(out, queries.size());
        for (String q : queries) {
            byte[] b = utf8(q, "meta context query");
            if (q.indexOf(':') <= 0) {
                throw new IllegalArgumentException("meta context query '" + q
                    + "' must start with a namespace and a colon, e.g. base:allocation or qemu:dirty-bitmap:NAME");
            }
            writeInt(out, b.length);
            out.writeBytes(b);
        }
        return out.toByteArray();
    }

    /** UTF-8 bytes of a protocol string, checked against the protocol's rules (no NUL, at most 4096 bytes). */
    static byte[] utf8(String s, String what) {
        if (s == null) {
            throw new IllegalArgumentException(what + " must not be null");
        }
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        if (b.length > NbdConstants.MAX_STRING_LENGTH) {
            throw new IllegalArgumentException(what + " is " + b.length + " bytes; NBD allows at most "
                + NbdConstants.MAX_STRING_LENGTH);
        }
        if (s.indexOf('\0') >= 0) {
            throw new IllegalArgumentException(what + " must not contain NUL characters");
        }
        return b;
    }

    private static void writeInt(ByteArrayOutputStream out, int v) {
        out.write(v >>> 24);
        out.write(v >>> 16);
        out.write(v >>> 8);
        out.write(v);
    }

    private static void writeShort(ByteArrayOutputStream out, int v) {
        out.write(v >>> 8);
        out.write(v);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof OptionRequest r && r.option.equals(option) && Arrays.equals(r.data, data);
    }

    @Override
    public int hashCode() {
        return option.hashCode() * 31 + Arrays.hashCode(data);
    }

    @Override
    public String toString() {
        return "OptionRequest[" + option + ", " + data.length + " bytes]";
    }
}
