package io.jbackup.testutil;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The command that starts a JVM like this test's, for tests that run jbackup (or a helper class) in a process of its
 * own: this JVM's {@code java} followed by the options distribution/bin/jbackup passes on this Java version. On Java
 * 23 and later those allow JNI and netty's {@code sun.misc.Unsafe} explicitly, as the launcher does; otherwise the
 * JVM warns on standard error, which the tests that expect a quiet standard error would see.
 */
public final class TestJvm {
    private TestJvm() {
    }

    /** {@code JAVA_HOME/bin/java} of this JVM. */
    public static String javaBinary() {
        return Path.of(System.getProperty("java.home"), "bin", "java").toString();
    }

    /** The launcher's version-dependent options (none before Java 23). */
    public static List<String> launcherOptions() {
        return Runtime.version().feature() >= 23
            ? List.of("--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow")
            : List.of();
    }

    /** {@link #javaBinary} and {@link #launcherOptions}, then {@code more}. */
    public static List<String> java(String... more) {
        List<String> cmd = new ArrayList<>();
        cmd.add(javaBinary());
        cmd.addAll(launcherOptions());
        cmd.addAll(List.of(more));
        return cmd;
    }
}
