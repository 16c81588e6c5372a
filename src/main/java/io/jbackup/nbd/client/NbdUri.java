package io.jbackup.nbd.client;

import io.jbackup.error.UsageException;
import io.jbackup.nbd.protocol.NbdConstants;

import java.io.ByteArrayOutputStream;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * An NBD URI as defined by the NBD URI specification ({@code doc/uri.md} in NetworkBlockDevice/nbd):
 * <pre>
 * nbd://HOST[:PORT]/EXPORT             TCP, plaintext (port 10809 by default)
 * nbds://HOST[:PORT]/EXPORT            TCP, TLS required
 * nbd+unix:///EXPORT?socket=PATH       unix domain socket
 * nbds+unix:///EXPORT?socket=PATH      unix domain socket, TLS required
 * </pre>
 * The export name is the path without its leading slash, percent-decoded ({@code nbd://h/} and {@code nbd://h}
 * both name the default export ""). IPv6 hosts are written in brackets ({@code nbd://[::1]:10809/x}).
 *
 * @param scheme one of {@code nbd}, {@code nbds}, {@code nbd+unix}, {@code nbds+unix}
 * @param host   the TCP host (IPv6 without brackets), or null for unix sockets
 * @param port   the TCP port, or 0 for unix sockets
 * @param socket the unix socket path, or null for TCP
 * @param export the export name ("" = default export)
 * @param tls    whether the scheme requires TLS ({@code nbds})
 */
public record NbdUri(String scheme, String host, int port, Path socket, String export, boolean tls) {

    public NbdUri {
        if (scheme == null || export == null) {
            throw new UsageException("NBD URI scheme and export must be set");
        }
        boolean unix = scheme.endsWith("+unix");
        if (!(scheme.equals("nbd") || scheme.equals("nbds") || scheme.equals("nbd+unix")
            || scheme.equals("nbds+unix"))) {
            throw new UsageException("unsupported NBD URI scheme '" + scheme
                + "'; use nbd://, nbds://, nbd+unix:// or nbds+unix://");
        }
        if (tls != scheme.startsWith("nbds")) {
            throw new UsageException("scheme " + scheme + " and tls=" + tls + " disagree");
        }
        if (unix) {
            if (socket == null || host != null || port != 0) {
                throw new UsageException(scheme + " URIs need a socket path and no host or port");
            }
        } else if (host == null || host.isEmpty() || socket != null || port < 1 || port > 65535) {
            throw new UsageException(scheme + " URIs need a host and a port in 1..65535, no socket");
        }
        if (export.getBytes(StandardCharsets.UTF_8).length > NbdConstants.MAX_STRING_LENGTH) {
            throw new UsageException("export name longer than " + NbdConstants.MAX_STRING_LENGTH + " bytes");
        }
    }

    /** {@code nbd://host:port/export} or {@code nbds://...}. */
    public static NbdUri tcp(String host, int port, String export, boolean tls) {
        return new NbdUri(tls ? "nbds" : "nbd", host, port, null, export, tls);
    }

    /** {@code nbd+unix:///export?socket=PATH} or {@code nbds+unix://...}. */
    public static NbdUri unix(Path socket, String export, boolean tls) {
        return new NbdUri(tls ? "nbds+unix" : "nbd+unix", null, 0, socket, export, tls);
    }

    /** Whether this URI names a unix domain socket. */
    public boolean isUnix() {
        return socket != null;
    }

    /** The host to name in TLS (certificate check, SNI): the URI host, or {@code localhost} for unix sockets. */
    public String tlsHost() {
        return isUnix() ? "localhost" : host;
    }

    /**
     * Parses an NBD URI.
     *
     * @throws IllegalArgumentException naming what is wrong and showing the accepted forms
     */
    public static NbdUri parse(String uri) {
        if (uri == null || uri.isBlank()) {
            throw new UsageException("empty NBD URI; " + FORMS);
        }
        URI u;
        try {
            u = new URI(uri.trim());
        } catch (URISyntaxException e) {
            throw new UsageException("malformed NBD URI '" + uri + "': " + e.getReason() + " at index "
                + e.getIndex() + "; " + FORMS);
        }
        String scheme = u.getScheme();
        if (scheme == null) {
            throw new UsageException("NBD URI '" + uri + "' has no scheme; " + FORMS);
        }
        scheme = scheme.toLowerCase(java.util.Locale.ROOT);
        boolean tls = scheme.startsWith("nbds");
        if (!(scheme.equals("nbd") || scheme.equals("nbds") || scheme.equals("nbd+unix")
            || scheme.equals("nbds+unix"))) {
            throw new UsageException("unsupported scheme '" + u.getScheme() + "' in '" + uri + "'; "
                + FORMS);
        }
        if (u.isOpaque()) {
            throw new UsageException("NBD URI '" + uri + "' must have '//' after the scheme; " + FORMS);
        }
        if (u.getRawFragment() != null) {
            throw new UsageException("NBD URI '" + uri + "' must not have a #fragment");
        }
        if (u.getRawUserInfo() != null) {
            throw new UsageException("NBD URI '" + uri + "': user names in URIs are not supported; "
                + "use --tls-username for TLS-PSK");
        }
        String rawPath = u.getRawPath() == null ? "" : u.getRawPath();
        String export = rawPath.isEmpty() ? "" : decode(rawPath.substring(1), uri);
        if (!rawPath.isEmpty() && !rawPath.startsWith("/")) {
            throw new UsageException("NBD URI '" + uri + "': the export must follow a '/'");
        }
        Path socket = null;
        if (u.getRawQuery() != null && !u.getRawQuery().isEmpty()) {
            for (String param : u.getRawQuery().split("&")) {
                int eq = param.indexOf('=');
                String key = eq < 0 ? param : param.substring(0, eq);
                String value = eq < 0 ? "" : decode(param.substring(eq + 1), uri);
                if (key.equals("socket")) {
                    if (value.isEmpty()) {
                        throw new UsageException("NBD URI '" + uri + "': socket= needs a path");
                    }
                    socket = Path.of(value);
                } else {
                    throw new UsageException("NBD URI '" + uri + "': unsupported query parameter '" + key
                        + "' (only socket= for nbd+unix:// URIs)");
                }
            }
        }
        if (scheme.endsWith("+unix")) {
            if (u.getRawAuthority() != null && !u.getRawAuthority().isEmpty()) {
                throw new UsageException("NBD URI '" + uri + "': " + scheme + " URIs have no host; write "
                    + scheme + ":///EXPORT?socket=PATH (three slashes)");
            }
            if (socket == null) {
                throw new UsageException("NBD URI '" + uri + "': " + scheme + " URIs need ?socket=PATH");
            }
            return unix(socket, export, tls);
        }
        if (socket != null) {
            throw new UsageException("NBD URI '" + uri + "': socket= is only valid with nbd+unix:// or "
                + "nbds+unix://");
        }
        String host = u.getHost();
        if (host == null || host.isEmpty()) {
            throw new UsageException("NBD URI '" + uri + "' has no (valid) host; " + FORMS);
        }
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        }
        int port = u.getPort() == -1 ? NbdConstants.DEFAULT_PORT : u.getPort();
        if (port < 1 || port > 65535) {
            throw new UsageException("NBD URI '" + uri + "': port " + port + " is not in 1..65535");
        }
        return tcp(host, port, export, tls);
    }

    private static final String FORMS = "expected nbd://HOST[:PORT]/EXPORT, nbds://HOST[:PORT]/EXPORT, "
        + "nbd+unix:///EXPORT?socket=PATH or nbds+unix:///EXPORT?socket=PATH";

    /** The canonical URI text; {@code parse(toString())} equals this record. */
    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder(scheme).append("://");
        if (!isUnix()) {
            sb.append(host.indexOf(':') >= 0 ? "[" + host + "]" : host);
            if (port != NbdConstants.DEFAULT_PORT) {
                sb.append(':').append(port);
            }
        }
        sb.append('/').append(encode(export, "/:@!$'()*+,;="));
        if (isUnix()) {
            sb.append("?socket=").append(encode(socket.toString(), "/:@!$'()*+,;"));
        }
        return sb.toString();
    }

    private static String encode(String s, String allowed) {
        StringBuilder sb = new StringBuilder();
        for (byte b : s.getBytes(StandardCharsets.UTF_8)) {
            int c = b & 0xff;
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.'
                || c == '_' || c == '~' || (c < 128 && allowed.indexOf(c) >= 0)) {
                sb.append((char) c);
            } else {
                sb.append('%').append(Character.toUpperCase(Character.forDigit(c >> 4, 16)))
                    .append(Character.toUpperCase(Character.forDigit(c & 15, 16)));
            }
        }
        return sb.toString();
    }

    private static String decode(String s, String uri) {
        if (s.indexOf('%') < 0) {
            return s;
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '%') {
                int hi = i + 2 < s.length() ? Character.digit(s.charAt(i + 1), 16) : -1;
                int lo = i + 2 < s.length() ? Character.digit(s.charAt(i + 2), 16) : -1;
                if (hi < 0 || lo < 0) {
                    throw new UsageException("NBD URI '" + uri + "': bad percent escape at '"
                        + s.substring(i) + "'");
                }
                out.write(hi * 16 + lo);
                i += 2;
            } else {
                int j = s.indexOf('%', i);
                j = j < 0 ? s.length() : j;
                out.writeBytes(s.substring(i, j).getBytes(StandardCharsets.UTF_8));
                i = j - 1;
            }
        }
        return out.toString(StandardCharsets.UTF_8);
    }
}
