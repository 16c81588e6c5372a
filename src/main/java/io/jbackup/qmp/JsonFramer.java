package io.jbackup.qmp;

import java.util.Arrays;
import java.util.function.Consumer;

/**
 * Splits a byte stream into top-level JSON objects, the framing of QMP and of the QEMU guest agent.
 *
 * <p>QMP sends one JSON object per message, separated by whitespace (in practice CRLF); an object may contain
 * braces inside strings, so the framer follows strings and escapes instead of counting raw braces. The state
 * machine:
 * <pre>
 *   BETWEEN --'{'--&gt; OBJECT --'"'--&gt; STRING --'\'--&gt; ESCAPE --any--&gt; STRING
 *                     OBJECT &lt;--'"'-- STRING
 *   OBJECT at depth 0 after '}' emits the object and returns to BETWEEN
 * </pre>
 * Between objects only JSON whitespace is allowed, unless the framer was made for the guest agent
 * ({@code resync}): then other bytes are skipped, and a {@code 0xFF} byte anywhere discards a partial object,
 * because the agent's {@code guest-sync-delimited} reply starts with 0xFF to mark where stale output ends.
 *
 * <p>{@code maxMessageBytes} bounds each object before it is buffered; a longer one fails the stream.
 * Not thread-safe: one framer per connection, fed by its reader thread.
 */
final class JsonFramer {
    /** Where the framer is in the byte stream. */
    enum State {
        /** Outside any object: whitespace (or, when resyncing, skipped bytes). */
        BETWEEN,
        /** Inside an object or array, outside strings. */
        OBJECT,
        /** Inside a string. */
        STRING,
        /** After a backslash inside a string. */
        ESCAPE
    }

    private static final int DELIMITER = 0xFF;

    private final int maxMessageBytes;
    private final boolean resync;
    private State state = State.BETWEEN;
    private int depth;
    private byte[] buf = new byte[4096];
    private int len;

    /**
     * @param maxMessageBytes the largest object accepted, in bytes (at least 2)
     * @param resync          guest-agent mode: skip bytes between objects, and restart at each 0xFF byte
     */
    JsonFramer(int maxMessageBytes, boolean resync) {
        if (maxMessageBytes < 2) {
            throw new IllegalArgumentException("maxMessageBytes " + maxMessageBytes + " (expected: >= 2)");
        }
        this.maxMessageBytes = maxMessageBytes;
        this.resync = resync;
    }

    State state() {
        return state;
    }

    /** Feeds {@code n} bytes; each complete object is passed to {@code sink} as its exact bytes. */
    void feed(byte[] in, int off, int n, Consumer<byte[]> sink) throws QmpConnectionException {
        for (int i = off; i < off + n; i++) {
            int b = in[i] & 0xff;
            if (resync && b == DELIMITER) {
                state = State.BETWEEN;
                len = 0;
                depth = 0;
                continue;
            }
            switch (state) {
                case BETWEEN -> {
                    if (b == '{') {
                        state = State.OBJECT;
                        depth = 1;
                        len = 0;
                        append(b);
                    } else if (!(b == ' ' || b == '\t' || b == '\r' || b == '\n') && !resync) {
                        throw new QmpConnectionException(String.format("unexpected byte 0x%02x between QMP messages "
                            + "(expected '{' or whitespace); the peer does not speak QMP", b));
                    }
                }
                case OBJECT -> {
                    append(b);
                    if (b == '"') {
                        state = State.STRING;
                    } else if (b == '{' || b == '[') {
                        depth++;
                    } else if (b == '}' || b == ']') {
                        depth--;
                        if (depth == 0) {
                            sink.accept(Arrays.copyOf(buf, len));
                            len = 0;
                            state = State.BETWEEN;
                        }
                    }
                }
                case STRING -> {
                    append(b);
                    if (b == '\\') {
                        state = State.ESCAPE;
                    } else if (b == '"') {
                        state = State.OBJECT;
                    }
                }
                case ESCAPE -> {
                    append(b);
                    state = State.STRING;
                }
                default -> throw new IllegalStateException(state.toString());
            }
        }
    }

    private void append(int b) throws QmpConnectionException {
        if (len == maxMessageBytes) {
            throw new QmpConnectionException("a message from the peer exceeds " + maxMessageBytes
                + " bytes; refusing to buffer it (raise the limit if the block graph is really that large)");
        }
        if (len == buf.length) {
            buf = Arrays.copyOf(buf, (int) Math.min(maxMessageBytes, 2L * buf.length));
        }
        buf[len++] = (byte) b;
    }
}
