package io.jbackup.nbd.server;

/**
 * The reply to a successful {@code NBD_OPT_EXPORT_NAME}: {@code size(8) transmission-flags(2)} followed by 124 zero
 * bytes unless the client negotiated {@code NO_ZEROES}. Encoded by {@link ServerOptionReplyEncoder}.
 */
public record ExportNameReply(long size, int transmissionFlags, boolean padWithZeroes) {
}
