package io.jbackup.nbd.server;

/**
 * The newstyle greeting: {@code NBDMAGIC(8) IHAVEOPT(8) handshake-flags(2)}. Encoded by
 * {@link ServerOptionReplyEncoder}.
 *
 * @param handshakeFlags 16-bit handshake flags (FIXED_NEWSTYLE, NO_ZEROES)
 */
public record ServerGreeting(int handshakeFlags) {
}
