package io.jbackup.nbd.protocol;

/**
 * The 32-bit client flags a client sends right after the greeting
 * ({@link NbdConstants#FLAG_C_FIXED_NEWSTYLE}, {@link NbdConstants#FLAG_C_NO_ZEROES}).
 */
public record ClientFlags(int flags) {
    /** The flags a client should answer {@code greeting} with: echo what the server offers, nothing else. */
    public static ClientFlags answering(ServerGreeting greeting) {
        int f = 0;
        if (greeting.fixedNewstyle()) {
            f |= NbdConstants.FLAG_C_FIXED_NEWSTYLE;
        }
        if (greeting.noZeroes()) {
            f |= NbdConstants.FLAG_C_NO_ZEROES;
        }
        return new ClientFlags(f);
    }

    public boolean noZeroes() {
        return (flags & NbdConstants.FLAG_C_NO_ZEROES) != 0;
    }
}
