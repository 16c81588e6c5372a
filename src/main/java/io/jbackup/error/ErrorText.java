package io.jbackup.error;

/**
 * The one line a user reads about a failure: the exception's message and the distinct messages of its causes,
 * joined with ": ", up to the first {@link FullMessage} that is complete. A message that repeats text already in
 * the line is left out; an exception without a message is named by its class.
 */
public final class ErrorText {
    private static final int MAX_CAUSES = 64;

    private ErrorText() {
    }

    public static String describe(Throwable e) {
        StringBuilder sb = new StringBuilder();
        int depth = 0;
        for (Throwable t = e; t != null && depth < MAX_CAUSES; t = t.getCause() == t ? null : t.getCause(), depth++) {
            String m = t.getMessage();
            if (m == null || m.isBlank()) {
                m = t.getClass().getSimpleName();
            }
            if (sb.indexOf(m) < 0) {
                sb.append(sb.length() == 0 ? "" : ": ").append(m);
            }
            if (t instanceof FullMessage f && f.messageIsFull()) {
                break;
            }
        }
        return sb.toString();
    }
}
