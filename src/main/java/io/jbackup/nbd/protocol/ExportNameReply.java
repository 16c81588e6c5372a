package io.jbackup.nbd.protocol;

/**
 * The server's answer to {@code NBD_OPT_EXPORT_NAME}: {@code size(8) transmission-flags(2)}, followed by 124 zero
 * bytes unless {@code NO_ZEROES} was negotiated. (A failed {@code EXPORT_NAME} has no reply: the server closes.)
 * Decoded by the client's {@link HandshakeDecoder}, encoded by the server's option reply encoder.
 *
 * @param padWithZeroes whether the 124 zero bytes follow (the client did not set {@code NO_ZEROES})
 */
public record ExportNameReply(long size, int transmissionFlags, boolean padWithZeroes) {
}
