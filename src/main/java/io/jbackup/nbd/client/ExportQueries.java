package io.jbackup.nbd.client;

import io.jbackup.nbd.protocol.NbdOptionReplyType;
import io.jbackup.nbd.protocol.NbdProtocolException;
import io.jbackup.nbd.protocol.OptionReply;
import io.jbackup.nbd.protocol.OptionRequest;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * The handshake's queries, on a connection that ends with {@code NBD_OPT_ABORT} (or, for the meta contexts,
 * before {@code NBD_OPT_GO}): the exports, an export's information, the meta contexts.
 */
final class ExportQueries {
    private final OptionChannel ch;

    ExportQueries(OptionChannel ch) {
        this.ch = ch;
    }

    /** {@code NBD_OPT_LIST}: export names and their free-text details, in the server's order. */
    List<OptionReply.Server> list() throws IOException {
        ch.requireFixedNewstyle("list exports");
        List<OptionReply> r = ch.option(OptionRequest.list());
        if (OptionChannel.last(r) instanceof OptionReply.Error e) {
            throw ch.refused(e, "NBD_OPT_LIST");
        }
        List<OptionReply.Server> out = new ArrayList<>();
        for (OptionReply x : r) {
            if (x instanceof OptionReply.Server s) {
                out.add(s);
            } else if (!(x instanceof OptionReply.Ack)) {
                throw new NbdProtocolException("unexpected reply " + x + " to NBD_OPT_LIST from " + ch.uri);
            }
        }
        return out;
    }

    /** {@code NBD_OPT_INFO} for one export; null if the server does not support INFO. */
    ExportInfo info(String export, String details) throws IOException {
        List<OptionReply> r = ch.option(OptionRequest.info(export, InfoReplies.INFO_REQUESTS));
        if (OptionChannel.last(r) instanceof OptionReply.Error e) {
            if (e.type().equals(NbdOptionReplyType.ERR_UNSUP)) {
                return null;
            }
            throw ch.refused(e, "NBD_OPT_INFO for export '" + export + "'");
        }
        return InfoReplies.exportInfo(ch.uri, export, details, r, true);
    }

    /** {@code NBD_OPT_LIST_META_CONTEXT}: context names matching the queries (all with no queries). */
    List<String> listMetaContexts(List<String> queries) throws IOException {
        List<OptionReply> r = ch.option(OptionRequest.listMetaContext(ch.uri.export(), queries));
        if (OptionChannel.last(r) instanceof OptionReply.Error e) {
            if (e.type().equals(NbdOptionReplyType.ERR_UNSUP)) {
                return List.of();
            }
            throw ch.refused(e, "NBD_OPT_LIST_META_CONTEXT");
        }
        List<String> names = new ArrayList<>();
        for (OptionReply x : r) {
            if (x instanceof OptionReply.MetaContext m) {
                names.add(m.name());
            }
        }
        return names;
    }
}
