package io.jbackup.nbd.client;

import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdProtocolException;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;

/** Helpers over block-status extents: complete maps of a range, and merging of equal neighbours. */
public final class Extents {
    private Extents() {
    }

    /**
     * The extents of one meta context over {@code [offset, offset + length)}, by repeated block-status requests
     * (blocking). The result is contiguous from {@code offset} and ends exactly at {@code offset + length}.
     *
     * @throws IllegalArgumentException if {@code context} was not negotiated
     */
    public static List<Extent> map(NbdClient client, String context, long offset, long length) throws IOException {
        if (!client.metaContexts().containsKey(context)) {
            throw new IllegalArgumentException("meta context '" + context + "' was not negotiated with "
                + client.uri() + " (negotiated: " + client.metaContexts().keySet() + ")");
        }
        long end = offset + length;
        List<Extent> out = new ArrayList<>();
        long pos = offset;
        while (pos < end) {
            Map<String, List<Extent>> r = join(client.blockStatus(pos, end - pos, false, List.of(context)));
            List<Extent> list = r.get(context);
            if (list == null || list.isEmpty()) {
                throw new NbdProtocolException("server returned no extents for " + context + " at offset " + pos);
            }
            for (Extent e : list) {
                if (e.offset() != pos) {
                    throw new NbdProtocolException("extents for " + context + " are not contiguous at offset " + pos);
                }
                if (pos >= end) {
                    break;
                }
                Extent x = e.end() > end ? new Extent(e.offset(), end - e.offset(), e.flags()) : e;
                out.add(x);
                pos = x.end();
            }
        }
        return out;
    }

    /** Merges neighbouring extents with equal flags (what {@code nbdinfo --map} prints). */
    public static List<Extent> coalesce(List<Extent> extents) {
        List<Extent> out = new ArrayList<>(extents.size());
        Extent cur = null;
        for (Extent e : extents) {
            if (cur != null && cur.flags() == e.flags() && cur.end() == e.offset()) {
                cur = new Extent(cur.offset(), cur.length() + e.length(), cur.flags());
            } else {
                if (cur != null) {
                    out.add(cur);
                }
                cur = e;
            }
        }
        if (cur != null) {
            out.add(cur);
        }
        return out;
    }

    static <T> T join(java.util.concurrent.CompletableFuture<T> f) throws IOException {
        try {
            return f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted");
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            if (c instanceof IOException io) {
                throw io;
            }
            if (c instanceof RuntimeException re) {
                throw re;
            }
            throw new IOException(c);
        }
    }
}
