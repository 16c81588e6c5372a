package io.jbackup.engine;

import io.jbackup.nbd.client.ClientOptions;
import io.jbackup.nbd.client.NbdClient;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.OptionalInt;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link QemuNbdProcess} against a real qemu-nbd: start, serve, stop, clean up, and the failures. */
class QemuNbdProcessTest {
    private static final int SIZE = 1 << 20;

    @TempDir
    Path tmp;

    @BeforeAll
    static void tools() {
        Proc.requireTool("qemu-img");
        Proc.requireTool("qemu-io");
        Proc.requireTool("qemu-nbd");
        Proc.requireTool("python3");
    }

    @Test
    void servesTheImageAndCloseStopsItAndDeletesTheDirectory() throws Exception {
        Path img = QemuImages.qcow2(tmp.resolve("a.qcow2"), "1M");
        QemuImages.io(img, "qcow2", "write -P 0x5a 64k 128k", "write -P 0xa5 900k 100k");
        Path served = tmp.resolve("served.raw");
        QemuNbdProcess q = QemuNbdProcess.start(QemuNbdProcess.locate(), tmp, "nbd-",
            List.of("-r", "-t", "-f", "qcow2", img.toString()), "qemu-nbd did not start serving " + img);
        Path dir = q.directory();
        try {
            assertEquals(tmp, dir.getParent());
            assertEquals(Set.of(PosixFilePermission.OWNER_READ, PosixFilePermission.OWNER_WRITE,
                PosixFilePermission.OWNER_EXECUTE), Files.getPosixFilePermissions(dir), "private directory");
            assertEquals(dir.resolve("nbd.sock"), q.socket());
            try (NbdClient c = NbdClient.connect(q.uri(), ClientOptions.defaults())) {
                byte[] data = new byte[SIZE];
                c.read(0, data, 0, SIZE).get();
                Files.write(served, data);
            }
            assertEquals(Proc.sha256(QemuImages.toRaw(img, tmp.resolve("a.raw"))), Proc.sha256(served));
            assertEquals("", q.log(), "probing for the socket leaves nothing in qemu-nbd's log");
        } finally {
            q.close();
        }
        assertFalse(Files.exists(dir), "close deletes the directory");
        assertTrue(q.awaitExit(Duration.ZERO).isPresent(), "close stopped qemu-nbd");
        q.close(); // a second close (the shutdown hook after the owner) does nothing
    }

    @Test
    void qemuNbdThatExitsAtOnceFailsWithItsOutputAndLeavesNothing() throws Exception {
        Path missing = tmp.resolve("no-such.qcow2");
        Path parent = Files.createDirectory(tmp.resolve("parent"));
        ExternalToolException e = assertThrows(ExternalToolException.class, () -> QemuNbdProcess.start(
            QemuNbdProcess.locate(), parent, "nbd-", List.of("-r", "-t", "-f", "qcow2", missing.toString()),
            "qemu-nbd did not start serving " + missing));
        assertTrue(e.getMessage().startsWith("qemu-nbd did not start serving " + missing + ": qemu-nbd: "),
            e.getMessage());
        assertTrue(e.getMessage().contains("Could not open '" + missing + "'"), e.getMessage());
        try (var s = Files.list(parent)) {
            assertEquals(List.of(), s.toList(), "the failed start deleted its directory");
        }
    }

    /** A socket file can exist before it accepts (qemu-nbd binds, then listens): start waits until it accepts. */
    @Test
    void waitsUntilTheSocketAcceptsNotJustUntilItExists() throws Exception {
        Path img = QemuImages.qcow2(tmp.resolve("b.qcow2"), "1M");
        Path fake = tmp.resolve("slow-qemu-nbd");
        Files.writeString(fake, "#!/bin/sh\n"
            + "# $1 $2 = -k SOCKET: a socket file that does not accept yet, then the real qemu-nbd replaces it\n"
            + "python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' \"$2\"\n"
            + "sleep 1\n"
            + "exec qemu-nbd \"$@\"\n");
        Files.setPosixFilePermissions(fake, PosixFilePermissions.fromString("rwx------"));
        try (QemuNbdProcess q = QemuNbdProcess.start(fake, tmp, "nbd-", List.of("-r", "-t", "-f", "qcow2",
            img.toString()), "qemu-nbd did not start serving " + img);
             NbdClient c = NbdClient.connect(q.uri(), ClientOptions.defaults())) {
            assertEquals(SIZE, c.info().size());
        }
    }

    /** Without -t qemu-nbd exits when its client disconnects: the probe must not count as that client. */
    @Test
    void qemuNbdWithoutPersistentServesOneClientAndExitsByItself() throws Exception {
        Path img = QemuImages.qcow2(tmp.resolve("c.qcow2"), "1M");
        byte[] data = new byte[SIZE];
        Arrays.fill(data, 256 << 10, 512 << 10, (byte) 0x77);
        Path want = tmp.resolve("want.raw");
        Files.write(want, data);
        try (QemuNbdProcess q = QemuNbdProcess.start(QemuNbdProcess.locate(), tmp, "nbd-",
            List.of("-f", "qcow2", img.toString()), "qemu-nbd did not start serving " + img)) {
            try (NbdClient c = NbdClient.connect(q.uri(), ClientOptions.defaults())) {
                c.write(0, data, 0, SIZE, false).get();
                c.flush().get();
            }
            assertEquals(OptionalInt.of(0), q.awaitExit(Duration.ofSeconds(30)), q.log());
        }
        assertEquals(Proc.sha256(want), Proc.sha256(QemuImages.toRaw(img, tmp.resolve("c.raw"))));
    }
}
