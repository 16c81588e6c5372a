package io.jbackup.objectstore;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.StandardOpenOption;
import java.nio.file.Path;

/**
 * The content of an object to write: its length, and a stream that can be opened again (a client retrying an
 * upload reads it anew).
 */
public interface ObjectSource {

    /** The number of bytes {@link #open()} yields. */
    long length() throws IOException;

    /** A new stream of the content from its first byte. */
    InputStream open() throws IOException;

    /** A new stream of the content from byte {@code offset} (a part of a multipart upload). */
    default InputStream open(long offset) throws IOException {
        InputStream in = open();
        in.skipNBytes(offset);
        return in;
    }

    /** The bytes of {@code data} (not copied: do not change them while the write runs). */
    static ObjectSource of(byte[] data) {
        return new ObjectSource() {
            @Override
            public long length() {
                return data.length;
            }

            @Override
            public InputStream open() {
                return new ByteArrayInputStream(data);
            }

            @Override
            public InputStream open(long offset) {
                return new ByteArrayInputStream(data, (int) Math.min(offset, data.length),
                    (int) Math.max(0, data.length - offset));
            }
        };
    }

    /** The content of {@code file}, which must not change while the write runs. */
    static ObjectSource of(Path file) {
        return new ObjectSource() {
            @Override
            public long length() throws IOException {
                return Files.size(file);
            }

            @Override
            public InputStream open() throws IOException {
                return Files.newInputStream(file);
            }

            @Override
            public InputStream open(long offset) throws IOException {
                FileChannel ch = FileChannel.open(file, StandardOpenOption.READ);
                ch.position(offset);
                return Channels.newInputStream(ch);
            }
        };
    }
}
