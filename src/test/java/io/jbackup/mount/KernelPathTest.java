package io.jbackup.mount;

import io.jbackup.engine.ExternalToolException;
import org.junit.jupiter.api.Test;

import static io.jbackup.mount.KernelPath.Via.AUTO;
import static io.jbackup.mount.KernelPath.Via.FUSE;
import static io.jbackup.mount.KernelPath.Via.NBD;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Which way a backup reaches the kernel, from what the host has ({@link KernelPath#choose}). */
class KernelPathTest {
    /** /dev/fuse, nbdfuse, nbd module, free nbd devices, nbd-client, qemu-nbd. */
    private static KernelPath.HostFacts host(boolean fuse, boolean nbdfuse, boolean module, int free,
                                             boolean nbdClient, boolean qemuNbd) {
        return new KernelPath.HostFacts(fuse, nbdfuse, module, free, nbdClient, qemuNbd);
    }

    private static String fails(KernelPath.Via via, KernelPath.HostFacts h) {
        return assertThrows(ExternalToolException.class, () -> KernelPath.choose(via, h)).getMessage();
    }

    @Test
    void autoTakesNbdfuseWhereverItWorks() throws ExternalToolException {
        KernelPath.Choice c = KernelPath.choose(AUTO, host(true, true, true, 16, true, true));
        assertEquals(KernelPath.Kind.FUSE, c.kind());
        assertEquals("nbdfuse", c.tool());
        assertTrue(KernelPath.describe(c).startsWith("nbdfuse file + read-only loop devices"), KernelPath.describe(c));
    }

    @Test
    void autoTakesTheKernelNbdDeviceWhenFuseIsMissingAndSaysWhy() throws ExternalToolException {
        KernelPath.Choice c = KernelPath.choose(AUTO, host(false, true, true, 16, true, true));
        assertEquals(new KernelPath.Choice(KernelPath.Kind.NBD, "nbd-client", "the nbdfuse path is not possible: "
            + "/dev/fuse is missing (load the fuse module, or give the container /dev/fuse)"), c);
        c = KernelPath.choose(AUTO, host(true, false, true, 1, false, true));
        assertEquals(KernelPath.Kind.NBD, c.kind());
        assertEquals("qemu-nbd", c.tool(), "qemu-nbd where nbd-client is missing");
        assertTrue(c.why().contains("nbdfuse is not installed (Debian package libnbd-bin)"), c.why());
        assertTrue(KernelPath.describe(c).startsWith("kernel nbd device connected read-only by qemu-nbd"),
            KernelPath.describe(c));
    }

    @Test
    void autoWithNeitherNamesWhatEachPathMisses() {
        String m = fails(AUTO, host(false, true, false, 0, true, true));
        assertTrue(m.contains("not through nbdfuse (/dev/fuse is missing") && m.contains("nor through the kernel's nbd "
            + "device (the kernel's nbd module is not loaded (/dev/nbd0 is missing: modprobe nbd))"), m);
        m = fails(AUTO, host(true, false, true, 4, false, false));
        assertTrue(m.contains("nbdfuse is not installed") && m.contains("neither nbd-client (Debian package "
            + "nbd-client) nor qemu-nbd (Debian package qemu-utils) is installed"), m);
        assertTrue(fails(AUTO, host(false, false, true, 0, true, false)).contains("every /dev/nbdN is in use"));
    }

    @Test
    void anExplicitViaIsTakenOrRefusedWithWhatIsMissing() throws ExternalToolException {
        assertEquals(KernelPath.Kind.NBD, KernelPath.choose(NBD, host(true, true, true, 1, false, true)).kind());
        assertEquals(KernelPath.Kind.FUSE, KernelPath.choose(FUSE, host(true, true, true, 1, true, true)).kind());
        assertEquals("--via nbd: the kernel's nbd module is not loaded (/dev/nbd0 is missing: modprobe nbd); or try "
            + "--via fuse", fails(NBD, host(true, true, false, 0, true, true)));
        assertEquals("--via fuse: /dev/fuse is missing (load the fuse module, or give the container /dev/fuse); or "
            + "try --via nbd", fails(FUSE, host(false, true, true, 2, true, true)));
    }
}
