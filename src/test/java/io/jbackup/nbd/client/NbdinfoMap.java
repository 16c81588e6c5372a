package io.jbackup.nbd.client;

import io.jbackup.nbd.protocol.Extent;
import io.jbackup.testutil.Proc;

import java.util.ArrayList;
import java.util.List;

/** Runs {@code nbdinfo --map=CONTEXT URI} and parses its lines ({@code offset length type [description]}). */
final class NbdinfoMap {
    private NbdinfoMap() {
    }

    static String raw(String uri, String context) {
        return Proc.run("nbdinfo", "--map=" + context, uri);
    }

    static List<Extent> extents(String uri, String context) {
        List<Extent> out = new ArrayList<>();
        for (String line : raw(uri, context).split("\n")) {
            if (line.isBlank()) {
                continue;
            }
            String[] f = line.trim().split("\\s+");
            out.add(new Extent(Long.parseLong(f[0]), Long.parseLong(f[1]), Integer.parseInt(f[2])));
        }
        return out;
    }
}
