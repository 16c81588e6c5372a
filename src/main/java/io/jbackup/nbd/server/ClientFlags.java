package io.jbackup.nbd.server;

import io.jbackup.nbd.protocol.NbdConstants;

/**
 * The 32-bit client flags a client sends right after the server greeting ({@code doc/proto.md}, "Newstyle
 * negotiation"). Decoded by {@link ServerOptionDecoder}.
 *
 * @param flags the raw flags; only {@link NbdConstants#FLAG_C_FIXED_NEWSTYLE} and
 *              {@link NbdConstants#FLAG_C_NO_ZEROES} are defined
 */
public record ClientFlags(int flags) {
    /** Flags this server understands. */
    public static final int KNOWN = NbdConstants.FLAG_C_FIXED_NEWSTYLE | NbdConstants.FLAG_C_NO_ZEROES;

    public boolean fixedNewstyle() {
        return (flags & NbdConstants.FLAG_C_FIXED_NEWSTYLE) != 0;
    }

    public boolean noZeroes() {
        return (flags & NbdConstants.FLAG_C_NO_ZEROES) != 0;
    }

    /** Bits set that the protocol does not define (a client that sets any MUST be disconnected). */
    public int unknownBits() {
        return flags & ~KNOWN;
    }
}
