package io.jbackup.nbd.protocol;

/**
 * The newstyle greeting: {@code NBDMAGIC(8) IHAVEOPT(8) handshake-flags(2)}. Decoded by the client's
 * {@link HandshakeDecoder}, encoded by the server's option reply encoder.
 *
 * @param handshakeFlags the 16-bit handshake flags ({@link NbdConstants#FLAG_FIXED_NEWSTYLE},
 *                       {@link NbdConstants#FLAG_NO_ZEROES}); unknown bits are kept and ignored by the client
 */
public record ServerGreeting(int handshakeFlags) {
    public boolean fixedNewstyle() {
        return (handshakeFlags & NbdConstants.FLAG_FIXED_NEWSTYLE) != 0;
    }

    public boolean noZeroes() {
        return (handshakeFlags & NbdConstants.FLAG_NO_ZEROES) != 0;
    }
}
