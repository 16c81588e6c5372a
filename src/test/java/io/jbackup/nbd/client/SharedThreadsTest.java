package io.jbackup.nbd.client;

import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import io.jbackup.testutil.TestJvm;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link NbdClient#stopSharedThreads()} ends the I/O threads every client shares (an idle event loop sits in a
 * native call, and the JVM's exit waits 0.3 s for such threads). Run in a child JVM: the test JVM's own clients
 * share those threads.
 */
class SharedThreadsTest {
    @TempDir
    Path dir;

    /** The child: one client connects, reads and closes; prints the I/O threads alive before and after the stop. */
    public static final class ChildMain {
        public static void main(String[] args) throws Exception {
            try (NbdClient c = NbdClient.connect(NbdUri.parse(args[0]), ClientOptions.defaults())) {
                c.read(0, new byte[4096], 0, 4096).get(10, TimeUnit.SECONDS);
            }
            System.out.println("before " + ioThreads());
            NbdClient.stopSharedThreads();
            System.out.println("after " + ioThreads());
            NbdClient.stopSharedThreads(); // again: nothing to do
        }

        private static long ioThreads() {
            return Thread.getAllStackTraces().keySet().stream()
                .filter(t -> t.isAlive() && t.getName().startsWith("jbackup-nbd-io")).count();
        }
    }

    @Test
    void stoppingTheSharedThreadsLeavesNoneAlive() throws Exception {
        Path img = QemuImages.qcow2(dir.resolve("s.qcow2"), "1M");
        try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2")) {
            Path out = dir.resolve("child.out");
            Process p = new ProcessBuilder(TestJvm.java(
                "-Xmx128m", "-XX:TieredStopAtLevel=1", "-cp", System.getProperty("java.class.path"),
                ChildMain.class.getName(), QemuImages.uriOf(s)))
                .redirectErrorStream(true).redirectOutput(out.toFile()).start();
            assertTrue(p.waitFor(60, TimeUnit.SECONDS), "child did not finish");
            String printed = Files.readString(out);
            assertEquals(0, p.exitValue(), printed);
            List<String> lines = printed.lines().filter(l -> l.startsWith("before ") || l.startsWith("after "))
                .toList();
            assertEquals(2, lines.size(), printed);
            assertTrue(Long.parseLong(lines.get(0).substring(7)) >= 1, "the client started I/O threads: " + printed);
            assertEquals("after 0", lines.get(1), printed);
        }
    }
}
