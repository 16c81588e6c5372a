package io.jbackup.nbd.client;

import io.jbackup.nbd.protocol.ExportNameReply;
import io.jbackup.nbd.protocol.NbdConnectionClosedException;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdHeaderMode;
import io.jbackup.nbd.protocol.NbdOptionReplyType;
import io.jbackup.nbd.protocol.NbdProtocolException;
import io.jbackup.nbd.protocol.OptionReply;
import io.jbackup.nbd.protocol.OptionRequest;
import io.jbackup.nbd.protocol.ReplyDecoder;
import io.jbackup.nbd.protocol.RequestEncoder;
import io.netty.channel.Channel;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Drives the handshake of one connection from the calling thread: greeting, client flags, STARTTLS (all in
 * {@link OptionChannel}), then the options each operation needs: the negotiation for a transmission connection here,
 * the queries that end with {@code NBD_OPT_ABORT} in {@link #queries()}. One option at a time, each awaited to its
 * final reply, all within one deadline ({@link ClientOptions#handshakeTimeout()}).
 */
final class Handshake implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Handshake.class);

    /**
     * The outcome of a successful negotiation, ready for transmission.
     *
     * @param structured     reply chunks are allowed: structured replies or extended headers
     * @param mode           the header mode: {@link NbdHeaderMode#EXTENDED} when extended headers were acknowledged
     * @param offeredBitmaps when a {@code qemu:dirty-bitmap:} context was asked for and not granted, the bitmap
     *                       names the export offers (listed on this connection); otherwise empty
     */
    record Negotiated(ExportInfo info, boolean structured, NbdHeaderMode mode, Map<Integer, String> contexts,
                      List<String> offeredBitmaps) {
    }

    final NbdUri uri;
    final ClientOptions opts;
    final Channel channel;
    private final OptionChannel ch;

    private Handshake(OptionChannel ch) {
        this.ch = ch;
        this.uri = ch.uri;
        this.opts = ch.opts;
        this.channel = ch.channel;
    }

    /** Connects, reads the greeting, sends the client flags and negotiates TLS as configured. */
    static Handshake start(NbdUri uri, ClientOptions opts) throws IOException {
        return new Handshake(OptionChannel.open(uri, opts));
    }

    /** The queries that end with {@code NBD_OPT_ABORT}: exports, export information, meta contexts. */
    ExportQueries queries() {
        return new ExportQueries(ch);
    }

    // ---- negotiation for a transmission connection ----

    /**
     * Extended headers (else structured replies, else neither), meta contexts, then GO (or EXPORT_NAME for servers
     * without GO, never after extended headers). Runs after STARTTLS, so TLS connections negotiate it afresh.
     */
    Negotiated negotiate(List<String> metaContexts) throws IOException {
        boolean structured = false;
        NbdHeaderMode mode = NbdHeaderMode.COMPACT;
        Map<Integer, String> contexts = new LinkedHashMap<>();
        List<String> offered = List.of();
        if (ch.fixedNewstyle()) {
            if (opts.extendedHeaders() && negotiateExtendedHeaders()) {
                mode = NbdHeaderMode.EXTENDED;
                structured = true;
            } else {
                structured = negotiateStructuredReplies();
            }
            if (structured && !metaContexts.isEmpty()) {
                List<OptionReply> r = ch.option(OptionRequest.setMetaContext(uri.export(), metaContexts));
                OptionReply fin = OptionChannel.last(r);
                if (fin instanceof OptionReply.Error e) {
                    if (e.type().equals(NbdOptionReplyType.ERR_TLS_REQD)) {
                        throw ch.refused(e, "NBD_OPT_SET_META_CONTEXT");
                    }
                    LOG.warn("{}: server refused meta contexts {} ({}); block status will not be available", uri,
                        metaContexts, e.describe());
                } else {
                    for (OptionReply x : r) {
                        if (x instanceof OptionReply.MetaContext m) {
                            if (contexts.containsKey(m.contextId())) {
                                throw new NbdProtocolException("server " + uri + " gave context id " + m.contextId()
                                    + " to both " + contexts.get(m.contextId()) + " and " + m.name());
                            }
                            contexts.put(m.contextId(), m.name());
                        }
                    }
                }
                if (contexts.size() < metaContexts.size()) {
                    LOG.debug("{}: server selected meta contexts {} of {}", uri, contexts.values(), metaContexts);
                    offered = bitmapsIfMissing(metaContexts, contexts.values());
                }
            }
            List<OptionReply> r = ch.option(OptionRequest.go(uri.export(), InfoReplies.INFO_REQUESTS));
            OptionReply fin = OptionChannel.last(r);
            if (fin instanceof OptionReply.Ack) {
                return new Negotiated(InfoReplies.exportInfo(uri, uri.export(), "", r, true), structured, mode,
                    contexts, offered);
            }
            OptionReply.Error e = (OptionReply.Error) fin;
            if (!e.type().equals(NbdOptionReplyType.ERR_UNSUP) || mode == NbdHeaderMode.EXTENDED) {
                throw ch.refused(e, "NBD_OPT_GO for export '" + uri.export() + "'");
            }
            LOG.debug("{}: server does not support NBD_OPT_GO; falling back to NBD_OPT_EXPORT_NAME", uri);
        }
        if (ch.tlsActive() && !ch.fixedNewstyle()) {
            throw new IllegalStateException("TLS without fixed newstyle");
        }
        return new Negotiated(exportName(), structured, mode, contexts, offered);
    }

    /**
     * When a requested dirty bitmap was not granted: the bitmaps the export does offer, asked with
     * {@code NBD_OPT_LIST_META_CONTEXT} on this connection before GO (a second connection would wait forever on a
     * server that serves one client at a time, such as qemu-nbd without {@code -e}). Empty if none was missing, or
     * if the server refuses the listing (it only serves a message).
     */
    private List<String> bitmapsIfMissing(List<String> requested, java.util.Collection<String> granted)
        throws IOException {
        String prefix = NbdConstants.CONTEXT_DIRTY_BITMAP_PREFIX;
        if (requested.stream().noneMatch(c -> c.startsWith(prefix) && !granted.contains(c))) {
            return List.of();
        }
        try {
            List<String> names = new ArrayList<>();
            for (String c : queries().listMetaContexts(List.of(prefix))) {
                if (c.startsWith(prefix) && !names.contains(c.substring(prefix.length()))) {
                    names.add(c.substring(prefix.length()));
                }
            }
            return List.copyOf(names);
        } catch (NbdHandshakeException e) {
            LOG.debug("{}: cannot list the export's bitmaps: {}", uri, e.getMessage());
            return List.of();
        }
    }

    /**
     * {@code NBD_OPT_EXTENDED_HEADERS} (QEMU 8.2+): true when acknowledged. A server without them (QEMU 7.2,
     * nbdkit 1.32) answers {@code ERR_UNSUP}; the client then falls back to structured replies.
     */
    boolean negotiateExtendedHeaders() throws IOException {
        OptionReply fin = OptionChannel.last(ch.option(OptionRequest.extendedHeaders()));
        if (fin instanceof OptionReply.Error e) {
            if (e.type().equals(NbdOptionReplyType.ERR_TLS_REQD)) {
                throw ch.refused(e, "NBD_OPT_EXTENDED_HEADERS");
            }
            LOG.debug("{}: no extended headers ({})", uri, e.describe());
            return false;
        }
        return true;
    }

    boolean negotiateStructuredReplies() throws IOException {
        OptionReply fin = OptionChannel.last(ch.option(OptionRequest.structuredReply()));
        if (fin instanceof OptionReply.Error e) {
            if (e.type().equals(NbdOptionReplyType.ERR_TLS_REQD)) {
                throw ch.refused(e, "NBD_OPT_STRUCTURED_REPLY");
            }
            LOG.debug("{}: no structured replies ({})", uri, e.describe());
            return false;
        }
        return true;
    }

    private ExportInfo exportName() throws IOException {
        ch.expectExportNameReply();
        ch.send(OptionRequest.exportName(uri.export()));
        Object o;
        try {
            o = ch.next("the reply to NBD_OPT_EXPORT_NAME");
        } catch (NbdConnectionClosedException e) {
            throw new NbdHandshakeException("server " + uri + " closed the connection after NBD_OPT_EXPORT_NAME '"
                + uri.export() + "': the export does not exist or needs TLS (list exports with: jbackup inspect "
                + "--list URI)", null);
        }
        if (!(o instanceof ExportNameReply r)) {
            throw new NbdProtocolException("expected the EXPORT_NAME reply from " + uri + ", got " + o);
        }
        return InfoReplies.validate(uri, new ExportInfo(uri.export(), "", r.size(),
            InfoReplies.effectiveFlags(r.transmissionFlags()), ExportInfo.DEFAULT_MIN_BLOCK, ExportInfo.DEFAULT_PREFERRED_BLOCK, ExportInfo.DEFAULT_MAX_BLOCK));
    }

    /**
     * Switches the channel to transmission: replaces the handshake codec with the request encoder and reply decoder.
     * Bytes already received stay in order.
     */
    Connection toTransmission(Negotiated n) throws IOException {
        TransmissionHandler th = new TransmissionHandler(uri.toString(), n.info().size(), n.structured(),
            opts.maxInFlight(), opts.requestTimeout().toNanos());
        int maxMetadata = n.mode() == NbdHeaderMode.EXTENDED ? ReplyDecoder.DEFAULT_MAX_METADATA_PAYLOAD_EXTENDED
            : ReplyDecoder.DEFAULT_MAX_METADATA_PAYLOAD;
        ReplyDecoder rd = new ReplyDecoder(n.mode(), opts.maxReplyPayload(),
            (int) Math.min(opts.maxReplyPayload(), maxMetadata), th);
        try {
            channel.eventLoop().submit(() -> {
                Object more = ch.pending();
                if (more != null) {
                    throw new NbdProtocolException("server " + uri + " sent more after the handshake ended: " + more);
                }
                channel.pipeline().replace("handshake-events", "nbd-client", th);
                channel.pipeline().replace("handshake-encoder", "request-encoder", RequestEncoder.of(n.mode()));
                channel.pipeline().replace("handshake-decoder", "reply-decoder", rd);
                return null;
            }).get(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted");
        } catch (ExecutionException e) {
            if (e.getCause() instanceof IOException io) {
                throw io;
            }
            throw new NbdProtocolException("cannot switch to transmission: " + e.getCause(), e.getCause());
        } catch (TimeoutException e) {
            throw new NbdTimeoutException("cannot switch to transmission: event loop did not respond");
        }
        return new Connection(channel, th, n.contexts());
    }

    void requireFixedNewstyle(String what) throws NbdHandshakeException {
        ch.requireFixedNewstyle(what);
    }

    /** Soft disconnect: {@code NBD_OPT_ABORT}, a short wait for the ACK (or close), then close. */
    void abort() {
        ch.abort();
    }

    @Override
    public void close() {
        ch.close();
    }
}
