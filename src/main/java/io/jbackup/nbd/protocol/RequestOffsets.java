package io.jbackup.nbd.protocol;

import java.util.HashMap;
import java.util.Map;

/**
 * The offsets of a connection's in-flight requests by cookie, for extended reply headers, which echo the request's
 * offset ({@code doc/proto.md}). The server's {@link ServerRequestDecoder} records each request; its
 * {@link ServerReplyEncoder} looks the offset up for every chunk and forgets it with the final one. Clients should use
 * a distinct cookie per in-flight request; with a reused one the later request's offset is echoed. Used on the
 * channel's event loop only.
 */
public final class RequestOffsets {
    private final Map<Long, Long> offsets = new HashMap<>();

    /** Records the offset of a request that will get a reply. */
    public void put(long cookie, long offset) {
        offsets.put(cookie, offset);
    }

    /** The offset of the request with this cookie (0 if unknown); forgotten when {@code last}. */
    public long offset(long cookie, boolean last) {
        Long o = last ? offsets.remove(cookie) : offsets.get(cookie);
        return o == null ? 0 : o;
    }

    /** Number of requests recorded and not yet answered. */
    public int size() {
        return offsets.size();
    }
}
