package io.jbackup.error;

import java.util.Optional;

/** The chain of an exception's causes, searched by type (never by message). */
public final class Causes {
    private static final int MAX_CAUSES = 64;

    private Causes() {
    }

    /** {@code e} or the first of its causes that is a {@code type}, outermost first; empty if none is. */
    public static <T extends Throwable> Optional<T> find(Throwable e, Class<T> type) {
        int depth = 0;
        for (Throwable t = e; t != null && depth < MAX_CAUSES; t = t.getCause() == t ? null : t.getCause(), depth++) {
            if (type.isInstance(t)) {
                return Optional.of(type.cast(t));
            }
        }
        return Optional.empty();
    }
}
