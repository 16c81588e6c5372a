package io.jbackup.nbd.protocol;

/**
 * One option reply of fixed newstyle negotiation:
 * {@code 0x3e889045565a9(8) option(4) reply-type(4) length(4) data(length)}. The client decodes it with
 * {@link HandshakeDecoder}; the server encodes it with {@link ServerOptionReplyEncoder}. One value type serves both.
 *
 * <p>{@code NBD_REP_INFO} replies are one record per {@code NBD_INFO_*} type. Every record carries the option the
 * server echoed, which the client checks against the option it sent. The static factories take the raw option code
 * the server received (unknown codes included).
 */
public sealed interface OptionReply {
    /** The option the server echoed. */
    NbdOption option();

    /** Whether this reply ends the option (an {@code ACK} or an error); other replies are followed by more. */
    default boolean isFinal() {
        return false;
    }

    /** {@code NBD_REP_ACK}. */
    record Ack(NbdOption option) implements OptionReply {
        @Override
        public boolean isFinal() {
            return true;
        }
    }

    /** {@code NBD_REP_SERVER} (answer to {@code NBD_OPT_LIST}): an export name and optional free text. */
    record Server(NbdOption option, String name, String details) implements OptionReply {
    }

    /** {@code NBD_REP_INFO} / {@code NBD_INFO_EXPORT}: size(8) transmission-flags(2). */
    record InfoExport(NbdOption option, long size, int transmissionFlags) implements OptionReply {
    }

    /** {@code NBD_REP_INFO} / {@code NBD_INFO_NAME}: the canonical export name. */
    record InfoName(NbdOption option, String name) implements OptionReply {
    }

    /** {@code NBD_REP_INFO} / {@code NBD_INFO_DESCRIPTION}. */
    record InfoDescription(NbdOption option, String description) implements OptionReply {
    }

    /** {@code NBD_REP_INFO} / {@code NBD_INFO_BLOCK_SIZE}: minimum(4) preferred(4) maximum-payload(4), unsigned. */
    record InfoBlockSize(NbdOption option, long minimum, long preferred, long maximum) implements OptionReply {
    }

    /** {@code NBD_REP_INFO} with an info type this client does not know (the client must ignore it). */
    record InfoUnknown(NbdOption option, NbdInfoType type, int length) implements OptionReply {
    }

    /** {@code NBD_REP_META_CONTEXT}: context-id(4) name. */
    record MetaContext(NbdOption option, int contextId, String name) implements OptionReply {
    }

    /** An error reply (reply type with bit 31 set) and its optional human-readable message. */
    record Error(NbdOption option, NbdOptionReplyType type, String message) implements OptionReply {
        @Override
        public boolean isFinal() {
            return true;
        }

        /** "ERR_UNSUP(0x80000001): message" or just the type. */
        public String describe() {
            return message.isEmpty() ? type.toString() : type + ": " + message;
        }
    }

    /** A non-error reply type this client does not know; a conforming server never sends one unasked. */
    record Unknown(NbdOption option, NbdOptionReplyType type, int length) implements OptionReply {
    }

    /** {@code NBD_REP_ACK}. */
    static OptionReply ack(int option) {
        return new Ack(NbdOption.valueOf(option));
    }

    /** An error reply with a human-readable message (cut to the protocol's 4096-byte limit when encoded). */
    static OptionReply error(int option, NbdOptionReplyType type, String message) {
        if (!type.isError()) {
            throw new IllegalArgumentException("not an error reply type: " + type);
        }
        return new Error(NbdOption.valueOf(option), type, message == null ? "" : message);
    }

    /** {@code NBD_REP_SERVER} for {@code NBD_OPT_LIST}. */
    static OptionReply server(int option, String name, String description) {
        return new Server(NbdOption.valueOf(option), name, description == null ? "" : description);
    }

    /** {@code NBD_REP_INFO} with {@code NBD_INFO_EXPORT}. */
    static OptionReply infoExport(int option, long size, int transmissionFlags) {
        return new InfoExport(NbdOption.valueOf(option), size, transmissionFlags);
    }

    /** {@code NBD_REP_INFO} with {@code NBD_INFO_NAME} or {@code NBD_INFO_DESCRIPTION}. */
    static OptionReply infoString(int option, NbdInfoType info, String value) {
        if (info.equals(NbdInfoType.NAME)) {
            return new InfoName(NbdOption.valueOf(option), value);
        }
        if (info.equals(NbdInfoType.DESCRIPTION)) {
            return new InfoDescription(NbdOption.valueOf(option), value);
        }
        throw new IllegalArgumentException("not a string information type: " + info);
    }

    /** {@code NBD_REP_INFO} with {@code NBD_INFO_BLOCK_SIZE}. */
    static OptionReply infoBlockSize(int option, int minimum, int preferred, int maxPayload) {
        return new InfoBlockSize(NbdOption.valueOf(option), Integer.toUnsignedLong(minimum),
            Integer.toUnsignedLong(preferred), Integer.toUnsignedLong(maxPayload));
    }

    /** {@code NBD_REP_META_CONTEXT}. */
    static OptionReply metaContext(int option, int contextId, String name) {
        return new MetaContext(NbdOption.valueOf(option), contextId, name);
    }
}
