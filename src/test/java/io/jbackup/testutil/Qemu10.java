package io.jbackup.testutil;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Assumptions;

/**
 * QEMU 10 (qemu-utils from bookworm-backports) beside the system's QEMU 7.2, for the interop tests of NBD extended
 * headers (QEMU 8.2+). {@code .ci/install-deps} extracts it into {@code /opt/qemu10}; {@code -Djbackup.qemu10=DIR}
 * points elsewhere (the extracted root, or the directory holding {@code qemu-nbd}). Tests call {@link #assume()}: they
 * are skipped, with the reason, only where QEMU 10 is absent (CI has it).
 */
public final class Qemu10 {
    /** Where {@code .ci/install-deps} extracts it. */
    public static final Path DEFAULT_ROOT = Path.of("/opt/qemu10");

    private Qemu10() {
    }

    /** The directory of QEMU 10's {@code qemu-nbd}, {@code qemu-img} and {@code qemu-io}, or null if absent. */
    public static Path bin() {
        String prop = System.getProperty("jbackup.qemu10");
        Path root = prop == null || prop.isBlank() ? DEFAULT_ROOT : Path.of(prop);
        for (Path d : new Path[] {root.resolve("usr/bin"), root}) {
            if (Files.isExecutable(d.resolve("qemu-nbd")) && Files.isExecutable(d.resolve("qemu-img"))) {
                return d;
            }
        }
        return null;
    }

    /** Skips the calling test, saying how to get QEMU 10, when it is absent. */
    public static void assume() {
        Assumptions.assumeTrue(bin() != null, "QEMU 10 not found in " + (System.getProperty("jbackup.qemu10") != null
            ? System.getProperty("jbackup.qemu10") : DEFAULT_ROOT) + ": run .ci/install-deps (its qemu10 group "
            + "extracts qemu-utils from bookworm-backports there) or pass -Djbackup.qemu10=DIR");
    }

    /** The path of one of QEMU 10's tools, e.g. {@code tool("qemu-img")}. */
    public static String tool(String name) {
        Path b = bin();
        if (b == null) {
            throw new IllegalStateException("QEMU 10 is not installed; call Qemu10.assume() first");
        }
        return b.resolve(name).toString();
    }

    /** As {@link QemuImages#qemuNbd}, with QEMU 10's qemu-nbd. */
    public static Proc.Background qemuNbd(Path dir, Path image, String format, String... extra) {
        return QemuImages.qemuNbd(tool("qemu-nbd"), dir, image, format, extra);
    }
}
