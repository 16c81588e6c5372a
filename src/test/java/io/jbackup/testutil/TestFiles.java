package io.jbackup.testutil;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;

/** File-tree helpers for tests. */
public final class TestFiles {
    private TestFiles() {
    }

    /**
     * Copies the tree {@code from} to {@code to} (created), leaving out lock files ({@code lock*}): a copied
     * repository is held by nobody.
     */
    public static Path copyTree(Path from, Path to) throws IOException {
        try (Stream<Path> s = Files.walk(from)) {
            for (Path p : (Iterable<Path>) s::iterator) {
                Path t = to.resolve(from.relativize(p).toString());
                if (Files.isDirectory(p)) {
                    Files.createDirectories(t);
                } else if (!p.getFileName().toString().startsWith("lock")) {
                    Files.copy(p, t);
                }
            }
        }
        return to;
    }
}
