package io.jbackup.nbd.protocol;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;

/**
 * The offsets of a connection's in-flight requests by cookie, for extended reply headers, which echo the request's
 * offset ({@code doc/proto.md}). The server's {@link ServerRequestDecoder} records each request; its
 * {@link ServerReplyEncoder} looks the offset up for every chunk and forgets it with the final one. Clients should use
 * a distinct cookie per in-flight request; requests that share one are answered in the order they arrived
 * (first in, first out), which is all a client could tell apart. Used on the channel's event loop only.
 */
public final class RequestOffsets {
    /** A Long per cookie, or an ArrayDeque of them while requests share the cookie. */
    private final Map<Long, Object> offsets = new HashMap<>();
    private int size;

    /** Records the offset of a request that will get a reply. */
    public void put(long cookie, long offset) {
        size++;
        Object old = offsets.putIfAbsent(cookie, offset);
        if (old instanceof Long first) {
            ArrayDeque<Long> q = new ArrayDeque<>(2);
            q.add(first);
            q.add(offset);
            offsets.put(cookie, q);
        } else if (old != null) {
            @SuppressWarnings("unchecked")
            ArrayDeque<Long> q = (ArrayDeque<Long>) old;
            q.add(offset);
        }
    }

    /** The offset of the oldest unanswered request with this cookie (0 if none); forgotten when {@code last}. */
    public long offset(long cookie, boolean last) {
        Object o = offsets.get(cookie);
        if (o == null) {
            return 0;
        }
        if (o instanceof Long l) {
            if (last) {
                offsets.remove(cookie);
                size--;
            }
            return l;
        }
        @SuppressWarnings("unchecked")
        ArrayDeque<Long> q = (ArrayDeque<Long>) o;
        if (!last) {
            return q.peekFirst();
        }
        size--;
        long first = q.pollFirst();
        if (q.size() == 1) {
            offsets.put(cookie, q.peekFirst());
        }
        return first;
    }

    /** Number of requests recorded and not yet answered. */
    public int size() {
        return size;
    }
}
