package io.jbackup.mount;

import io.jbackup.testutil.Proc;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFileAttributes;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Two directory trees compared entry by entry: names, types, content (SHA-256), and optionally modes and times. */
final class Trees {
    private Trees() {
    }

    /** What is compared besides names, types and content. */
    enum Depth { CONTENT, FULL }

    /** Relative path to a line describing the entry (the root and lost+found left out); equal trees give equal maps. */
    static Map<String, String> describe(Path root, Depth depth) throws IOException {
        Map<String, String> out = new TreeMap<>();
        try (Stream<Path> s = Files.walk(root)) {
            for (Path p : s.toList()) {
                String rel = root.relativize(p).toString();
                if (rel.isEmpty() || rel.equals("lost+found")) {
                    continue; // the root and lost+found are the mkfs's, not the files written
                }
                PosixFileAttributes a = Files.readAttributes(p, PosixFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
                StringBuilder b = new StringBuilder();
                if (a.isSymbolicLink()) {
                    b.append("link -> ").append(Files.readSymbolicLink(p));
                } else if (a.isDirectory()) {
                    b.append("dir");
                } else if (a.isRegularFile()) {
                    b.append("file ").append(a.size()).append(' ').append(Proc.sha256(p));
                } else {
                    b.append("other");
                }
                if (depth == Depth.FULL) {
                    Map<String, Object> u = Files.readAttributes(p, "unix:mode,uid,gid", LinkOption.NOFOLLOW_LINKS);
                    b.append(" mode ").append(Integer.toOctalString((Integer) u.get("mode")))
                        .append(" owner ").append(u.get("uid")).append(':').append(u.get("gid"));
                    if (!a.isSymbolicLink()) {
                        b.append(" mtime ").append(a.lastModifiedTime().toInstant());
                    }
                }
                out.put(rel, b.toString());
            }
        }
        return out;
    }

    /** Asserts that {@code actual} holds what {@code expected} holds, nothing more or less. */
    static void assertSame(Path expected, Path actual, Depth depth) throws IOException {
        Map<String, String> want = describe(expected, depth);
        Map<String, String> got = describe(actual, depth);
        if (!want.equals(got)) {
            List<String> diff = new ArrayList<>();
            for (String k : want.keySet()) {
                if (!want.get(k).equals(got.get(k))) {
                    diff.add(k + ": expected " + want.get(k) + ", got " + got.get(k));
                }
            }
            for (String k : got.keySet()) {
                if (!want.containsKey(k)) {
                    diff.add(k + ": not expected, got " + got.get(k));
                }
            }
            assertEquals(List.of(), diff.subList(0, Math.min(20, diff.size())), diff.size() + " differences between "
                + expected + " and " + actual);
        }
        assertTrue(want.size() > 1, expected + " is not empty");
    }
}
