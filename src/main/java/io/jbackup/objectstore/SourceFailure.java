package io.jbackup.objectstore;

import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;

/**
 * A failure to read the content of an upload from its {@link ObjectSource} (a local disk error, a file that shrank):
 * not the network's fault, so not retried. It travels through the SDK unchecked, as no {@link IOException} (which
 * the SDK would retry), and {@link #unwrap} brings the source's exception back.
 */
final class SourceFailure extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private SourceFailure(IOException cause) {
        super(cause);
    }

    /** {@code in}, whose read failures become {@link SourceFailure}s. */
    static InputStream guard(InputStream in) {
        return new FilterInputStream(in) {
            @Override
            public int read() {
                try {
                    return super.read();
                } catch (IOException e) {
                    throw new SourceFailure(e);
                }
            }

            @Override
            public int read(byte[] b, int off, int len) {
                try {
                    return super.read(b, off, len);
                } catch (IOException e) {
                    throw new SourceFailure(e);
                }
            }
        };
    }

    /** The source's exception if {@code e} was caused by one, else null. */
    static IOException unwrap(Throwable e) {
        for (Throwable c = e; c != null; c = c.getCause()) {
            if (c instanceof SourceFailure f) {
                return (IOException) f.getCause();
            }
        }
        return null;
    }
}
