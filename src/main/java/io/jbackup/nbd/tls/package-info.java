/**
 * TLS for NBD connections (the {@code NBD_OPT_STARTTLS} upgrade, see NBD {@code doc/proto.md} "TLS support"),
 * for both the client and the server. No NBD negotiation lives here; {@link io.jbackup.nbd.tls.NbdTls} documents
 * the exact sequence the NBD client and server follow.
 *
 * <ul>
 *   <li>{@link io.jbackup.nbd.tls.NbdTls} - facade: {@link io.jbackup.nbd.tls.TlsConfig} in, netty handler out.</li>
 *   <li>{@link io.jbackup.nbd.tls.BcTlsHandler} - TLS-PSK (qemu {@code tls-creds-psk}) on BouncyCastle.</li>
 *   <li>{@link io.jbackup.nbd.tls.PskPeer} - its BouncyCastle client/server, PSK identities and keys;
 *       {@link io.jbackup.nbd.tls.TlsRecordPump} - its bytes between netty buffers and BouncyCastle.</li>
 *   <li>{@link io.jbackup.nbd.tls.X509Contexts} - X.509 (qemu {@code tls-creds-x509}) on netty's {@code SslHandler}.</li>
 *   <li>{@link io.jbackup.nbd.tls.PskKeyFile} - qemu {@code keys.psk} files.</li>
 *   <li>{@link io.jbackup.nbd.tls.TlsHandshakeCompletion} - the one user event both kinds of handler fire.</li>
 *   <li>{@link io.jbackup.nbd.tls.NbdTlsException} - every TLS failure, with a message for the user.</li>
 * </ul>
 */
package io.jbackup.nbd.tls;
