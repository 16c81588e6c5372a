package io.jbackup.nbd.protocol;

/**
 * One option reply of fixed newstyle negotiation, decoded by {@link HandshakeDecoder}:
 * {@code 0x3e889045565a9(8) option(4) reply-type(4) length(4) data(length)}.
 *
 * <p>{@code NBD_REP_INFO} replies are decoded into one record per {@code NBD_INFO_*} type. Every record carries the
 * option the server echoed, which the client checks against the option it sent.
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
}
