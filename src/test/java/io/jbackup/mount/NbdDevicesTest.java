package io.jbackup.mount;

import io.jbackup.testutil.Proc;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The command lines that connect and disconnect a kernel nbd device ({@link NbdDevices}); the options qemu-nbd gets
 * are checked by {@code qemu-img info} against a real NBD server (nbdkit) on a socket whose path has a comma.
 */
class NbdDevicesTest {
    @TempDir
    Path dir;

    @Test
    void nbdClientConnectsReadOnlyByExportName() {
        assertEquals(List.of("nbd-client", "-unix", "/run/j/nbd.sock", "/dev/nbd3", "-name", "vda@0123", "-readonly"),
            NbdDevices.connectCommand("nbd-client", "/dev/nbd3", Path.of("/run/j/nbd.sock"), "vda@0123"));
        assertEquals(List.of("nbd-client", "-d", "/dev/nbd3"), NbdDevices.disconnectCommand("nbd-client",
            "/dev/nbd3"));
        assertEquals(List.of("qemu-nbd", "-d", "/dev/nbd3"), NbdDevices.disconnectCommand("qemu-nbd", "/dev/nbd3"));
    }

    @Test
    void qemuNbdGetsImageOptionsThatQemuReads() {
        Proc.requireTool("nbdkit");
        Proc.requireTool("qemu-img");
        Path socket = dir.resolve("a,b.sock");
        String export = "vd,a@01";
        List<String> cmd = NbdDevices.connectCommand("qemu-nbd", "/dev/nbd0", socket, export);
        assertEquals(List.of("qemu-nbd", "--fork", "--read-only", "--connect=/dev/nbd0", "--image-opts"),
            cmd.subList(0, 5));
        assertEquals("driver=raw,file.driver=nbd,file.server.type=unix,file.server.path=" + dir
            + "/a,,b.sock,file.export=vd,,a@01", cmd.get(5));
        try (Proc.Background s = Proc.start(dir.resolve("nbdkit.log"), "nbdkit", "-f", "-U", socket.toString(),
            "-e", export, "memory", "3M").awaitSocket(socket)) {
            Proc.Result r = Proc.exec(Duration.ofSeconds(30), "qemu-img", "info", "--image-opts", cmd.get(5));
            assertEquals(0, r.exitCode(), r.stderr());
            assertTrue(r.stdout().contains("3145728 bytes") && r.stdout().contains("file format: raw"), r.stdout());
        }
    }
}
