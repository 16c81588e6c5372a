package io.jbackup.cli;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * An S3 endpoint in memory on 127.0.0.1, for the class data sharing training run only ({@link CdsTraining}): enough
 * of the protocol (path-style PUT, GET with a byte range, HEAD, DELETE, ListObjectsV2 with prefix and delimiter,
 * NoSuchKey) for {@code init}, {@code list} and {@code stats} of an {@code s3://} repository to run as against a
 * real store, so the archive holds the S3 client's classes (about 0.8 CPU-s of class loading in every command on an
 * {@code s3://} repository otherwise). It checks no signature and keeps nothing after {@link #close()}.
 */
final class CdsS3Stub implements AutoCloseable {
    private final HttpServer server;
    private final Map<String, byte[]> objects = new TreeMap<>();

    CdsS3Stub() throws IOException {
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 16);
        server.createContext("/", this::handle);
        server.start();
    }

    /** The endpoint, {@code http://127.0.0.1:PORT}. */
    String endpoint() {
        return "http://127.0.0.1:" + server.getAddress().getPort();
    }

    private void handle(HttpExchange x) throws IOException {
        try (x) {
            URI u = x.getRequestURI();
            String path = u.getRawPath().substring(1); // BUCKET or BUCKET/KEY
            int slash = path.indexOf('/');
            String key = slash < 0 ? "" : URLDecoder.decode(path.substring(slash + 1), StandardCharsets.UTF_8);
            Map<String, String> q = query(u.getRawQuery());
            byte[] body = x.getRequestBody().readAllBytes();
            String sha = x.getRequestHeaders().getFirst("x-amz-content-sha256");
            if (sha != null && sha.startsWith("STREAMING-")) {
                body = unchunk(body);
            }
            String method = x.getRequestMethod();
            synchronized (objects) {
                if (key.isEmpty() && method.equals("GET") && q.containsKey("list-type")) {
                    send(x, 200, list(q));
                } else if (key.isEmpty()) {
                    send(x, 200, null); // the bucket exists
                } else if (method.equals("PUT")) {
                    objects.put(key, body);
                    x.getResponseHeaders().add("ETag", "\"" + Integer.toHexString(Arrays.hashCode(body)) + "\"");
                    send(x, 200, new byte[0]);
                } else if (method.equals("DELETE")) {
                    objects.remove(key);
                    send(x, 204, null);
                } else {
                    get(x, key, method.equals("HEAD"));
                }
            }
        }
    }

    private void get(HttpExchange x, String key, boolean head) throws IOException {
        byte[] b = objects.get(key);
        if (b == null) {
            send(x, 404, head ? null : ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code>"
                + "<Message>The specified key does not exist.</Message><Key>" + xml(key) + "</Key></Error>")
                .getBytes(StandardCharsets.UTF_8));
            return;
        }
        x.getResponseHeaders().add("ETag", "\"" + Integer.toHexString(Arrays.hashCode(b)) + "\"");
        x.getResponseHeaders().add("Last-Modified", "Mon, 07 Dec 2026 00:00:00 GMT");
        String range = x.getRequestHeaders().getFirst("Range");
        int status = 200;
        if (range != null && range.startsWith("bytes=")) {
            String[] r = range.substring(6).split("-", 2);
            int from = (int) Math.min(Long.parseLong(r[0]), b.length);
            int to = r[1].isEmpty() ? b.length - 1 : (int) Math.min(Long.parseLong(r[1]), b.length - 1);
            x.getResponseHeaders().add("Content-Range", "bytes " + from + "-" + to + "/" + b.length);
            b = Arrays.copyOfRange(b, from, Math.max(from, to + 1));
            status = 206;
        }
        if (head) {
            x.getResponseHeaders().add("Content-Length", String.valueOf(b.length));
            x.sendResponseHeaders(status, -1);
        } else {
            send(x, status, b);
        }
    }

    private byte[] list(Map<String, String> q) {
        String prefix = q.getOrDefault("prefix", "");
        String delimiter = q.get("delimiter");
        StringBuilder s = new StringBuilder("<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult>"
            + "<Prefix>" + xml(prefix) + "</Prefix><IsTruncated>false</IsTruncated>");
        TreeSet<String> common = new TreeSet<>();
        int n = 0;
        for (Map.Entry<String, byte[]> e : objects.entrySet()) {
            String k = e.getKey();
            if (!k.startsWith(prefix)) {
                continue;
            }
            int d = delimiter == null || delimiter.isEmpty() ? -1 : k.indexOf(delimiter, prefix.length());
            if (d >= 0) {
                common.add(k.substring(0, d + delimiter.length()));
                continue;
            }
            n++;
            s.append("<Contents><Key>").append(xml(k)).append("</Key><LastModified>2026-12-07T00:00:00.000Z")
                .append("</LastModified><ETag>\"").append(Integer.toHexString(Arrays.hashCode(e.getValue())))
                .append("\"</ETag><Size>").append(e.getValue().length).append("</Size><StorageClass>STANDARD")
                .append("</StorageClass></Contents>");
        }
        for (String c : common) {
            s.append("<CommonPrefixes><Prefix>").append(xml(c)).append("</Prefix></CommonPrefixes>");
        }
        s.append("<KeyCount>").append(n + common.size()).append("</KeyCount></ListBucketResult>");
        return s.toString().getBytes(StandardCharsets.UTF_8);
    }

    /** The payload of an {@code aws-chunked} body: chunks of {@code HEXSIZE[;EXT]\r\nDATA\r\n}, the last empty. */
    private static byte[] unchunk(byte[] b) {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream(b.length);
        int at = 0;
        while (at < b.length) {
            int eol = at;
            while (eol + 1 < b.length && !(b[eol] == '\r' && b[eol + 1] == '\n')) {
                eol++;
            }
            String head = new String(b, at, eol - at, StandardCharsets.US_ASCII);
            int semi = head.indexOf(';');
            int n = Integer.parseInt((semi < 0 ? head : head.substring(0, semi)).trim(), 16);
            if (n == 0) {
                break;
            }
            out.write(b, eol + 2, n);
            at = eol + 2 + n + 2;
        }
        return out.toByteArray();
    }

    private static void send(HttpExchange x, int status, byte[] body) throws IOException {
        if (body == null) {
            x.sendResponseHeaders(status, -1);
            return;
        }
        x.sendResponseHeaders(status, body.length == 0 ? -1 : body.length);
        try (OutputStream out = x.getResponseBody()) {
            out.write(body);
        }
    }

    private static Map<String, String> query(String raw) {
        Map<String, String> q = new HashMap<>();
        if (raw != null) {
            for (String p : raw.split("&")) {
                int eq = p.indexOf('=');
                q.put(URLDecoder.decode(eq < 0 ? p : p.substring(0, eq), StandardCharsets.UTF_8),
                    eq < 0 ? "" : URLDecoder.decode(p.substring(eq + 1), StandardCharsets.UTF_8));
            }
        }
        return q;
    }

    private static String xml(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;");
    }

    @Override
    public void close() {
        server.stop(0);
    }
}
