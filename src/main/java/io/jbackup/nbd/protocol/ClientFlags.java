package io.jbackup.nbd.protocol;

/**
 * The 32-bit client flags a client sends right after the greeting ({@code doc/proto.md}, "Newstyle negotiation").
 * Encoded by the client's {@link HandshakeEncoder}, decoded by the server's option decoder.
 *
 * @param flags the raw flags; only {@link NbdConstants#FLAG_C_FIXED_NEWSTYLE} and
 *              {@link NbdConstants#FLAG_C_NO_ZEROES} are defined
 */
public record ClientFlags(int flags) {
    /** The flags the protocol defines. */
    public static final int KNOWN = NbdConstants.FLAG_C_FIXED_NEWSTYLE | NbdConstants.FLAG_C_NO_ZEROES;

    /** The flags a client should answer {@code greeting} with: echo what the server offers, nothing else. */
    public static ClientFlags answering(ServerGreeting greeting) {
        int f = 0;
        if (greeting.fixedNewstyle()) {
            f |= NbdConstants.FLAG_C_FIXED_NEWSTYLE;
        }
        if (greeting.noZeroes()) {
            f |= NbdConstants.FLAG_C_NO_ZEROES;
        }
        return new ClientFlags(f);
    }

    public boolean fixedNewstyle() {
        return (flags & NbdConstants.FLAG_C_FIXED_NEWSTYLE) != 0;
    }

    public boolean noZeroes() {
        return (flags & NbdConstants.FLAG_C_NO_ZEROES) != 0;
    }

    /** Bits set that the protocol does not define (a server MUST disconnect a client that sets any). */
    public int unknownBits() {
        return flags & ~KNOWN;
    }
}
