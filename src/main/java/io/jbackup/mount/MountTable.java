package io.jbackup.mount;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The kernel's mount table, {@code /proc/self/mountinfo}: which directories are mount points. Fields are separated
 * by spaces; the fifth is the mount point with space, tab, newline and backslash escaped as {@code \040},
 * {@code \011}, {@code \012}, {@code \134}.
 */
public final class MountTable {
    private static final Path MOUNTINFO = Path.of("/proc/self/mountinfo");

    private MountTable() {
    }

    /** Every mount point, in mount order. */
    public static List<Path> mountPoints() throws IOException {
        List<Path> out = new ArrayList<>();
        for (String line : Files.readAllLines(MOUNTINFO)) {
            String[] f = line.split(" ");
            if (f.length > 4) {
                out.add(Path.of(unescape(f[4])));
            }
        }
        return out;
    }

    /** Whether {@code dir} is a mount point. */
    public static boolean isMountPoint(Path dir) throws IOException {
        return mountPoints().contains(dir.toAbsolutePath().normalize());
    }

    /** The mount points under {@code dir} (not {@code dir} itself), the most recent first. */
    public static List<Path> under(Path dir) throws IOException {
        Path d = dir.toAbsolutePath().normalize();
        List<Path> out = new ArrayList<>();
        for (Path p : mountPoints()) {
            if (p.startsWith(d) && !p.equals(d) && !out.contains(p)) {
                out.add(0, p);
            }
        }
        return out;
    }

    static String unescape(String s) {
        StringBuilder b = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\\' && i + 3 < s.length()
                && s.substring(i + 1, i + 4).chars().allMatch(x -> x >= '0' && x <= '7')) {
                b.append((char) Integer.parseInt(s.substring(i + 1, i + 4), 8));
                i += 3;
            } else {
                b.append(c);
            }
        }
        return b.toString();
    }
}
