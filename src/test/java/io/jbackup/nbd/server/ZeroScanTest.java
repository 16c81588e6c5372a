package io.jbackup.nbd.server;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.jbackup.nbd.protocol.Extent;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** {@link ZeroScan#extents} against a naive per-block scan, on random mixes of zero and data blocks. */
class ZeroScanTest {
    private static List<Extent> naive(byte[] b, int pos, int len, long offset, int g) {
        List<Extent> out = new ArrayList<>();
        int i = 0;
        while (i < len) {
            long at = offset + i;
            int n = (int) Math.min(len - i, g - (at % g));
            boolean zero = true;
            for (int k = 0; k < n; k++) {
                zero &= b[pos + i + k] == 0;
            }
            ZeroScan.append(out, at, n, zero ? ZeroScan.ZERO_FLAGS : 0);
            i += n;
        }
        return out;
    }

    @Test
    void matchesANaiveScan() {
        Random rnd = new Random(5);
        for (int round = 0; round < 300; round++) {
            int g = 1 << (9 + rnd.nextInt(4));
            byte[] b = new byte[g * (1 + rnd.nextInt(80)) + rnd.nextInt(g)];
            for (int blk = 0; blk * g < b.length; blk++) {
                int kind = rnd.nextInt(4);
                int s = blk * g;
                int e = Math.min(b.length, s + g);
                if (kind == 1) {
                    b[s + rnd.nextInt(e - s)] = (byte) (1 + rnd.nextInt(255)); // one nonzero byte anywhere
                } else if (kind == 2) {
                    for (int k = s; k < e; k++) {
                        b[k] = (byte) rnd.nextInt();
                    }
                }
            }
            int pos = rnd.nextInt(Math.max(1, b.length / 4));
            int len = 1 + rnd.nextInt(b.length - pos);
            long offset = (1L << 33) + rnd.nextInt(3 * g); // unaligned, beyond 4 GiB
            List<Extent> got = new ArrayList<>();
            ZeroScan.extents(ByteBuffer.wrap(b), pos, len, offset, g, got);
            assertEquals(naive(b, pos, len, offset, g), got, "round " + round);
            ByteBuffer direct = ByteBuffer.allocateDirect(b.length).put(b).flip();
            List<Extent> gotDirect = new ArrayList<>();
            ZeroScan.extents(direct, pos, len, offset, g, gotDirect);
            assertEquals(got, gotDirect);
        }
    }
}
