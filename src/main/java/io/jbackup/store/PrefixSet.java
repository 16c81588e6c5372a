package io.jbackup.store;

import java.util.Arrays;

/**
 * A set of 64-bit digest prefixes ({@link ChunkId#prefix}) in a sorted array: 8 bytes per chunk, so verify and
 * rebuild can check membership of millions of chunks in bounded memory. Two different chunks share a prefix with
 * probability 2^-64 per pair; a false "present" is the only possible error. Add everything, then {@link #seal},
 * then query.
 */
final class PrefixSet {
    private long[] values = new long[1024];
    private int size;
    private boolean sealed;

    void add(long v) {
        if (sealed) {
            throw new IllegalStateException("sealed");
        }
        if (size == values.length) {
            compact();
            if (size > values.length / 2) {
                values = Arrays.copyOf(values, values.length * 2);
            }
        }
        values[size++] = v;
    }

    void addDigest(byte[] d, int off) {
        add(ChunkId.prefix(d, off));
    }

    private void compact() {
        Arrays.sort(values, 0, size);
        int n = 0;
        for (int i = 0; i < size; i++) {
            if (n == 0 || values[n - 1] != values[i]) {
                values[n++] = values[i];
            }
        }
        size = n;
    }

    PrefixSet seal() {
        compact();
        sealed = true;
        return this;
    }

    boolean contains(long v) {
        if (!sealed) {
            throw new IllegalStateException("not sealed");
        }
        return Arrays.binarySearch(values, 0, size, v) >= 0;
    }

    /** The position of {@code v} among the distinct sorted values, or -1: a dense index for a bitset. */
    int indexOf(long v) {
        if (!sealed) {
            throw new IllegalStateException("not sealed");
        }
        int i = Arrays.binarySearch(values, 0, size, v);
        return i >= 0 ? i : -1;
    }

    boolean containsDigest(byte[] d, int off) {
        return contains(ChunkId.prefix(d, off));
    }

    int size() {
        return size;
    }
}
