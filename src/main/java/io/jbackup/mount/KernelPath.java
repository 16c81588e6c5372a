package io.jbackup.mount;

import io.jbackup.engine.ExternalToolException;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * How the served backup reaches the kernel, chosen by what the host has ({@code --via fuse|nbd|auto}):
 * <ul>
 * <li>{@link Kind#FUSE}: {@code nbdfuse} presents the export as a file ({@link NbdFuse}); needs {@code /dev/fuse}
 * and libnbd-bin. The default wherever it works: it needs no kernel module most hosts lack.</li>
 * <li>{@link Kind#NBD}: the kernel's nbd device, {@code /dev/nbdN} connected read-only to the socket by
 * {@code nbd-client}, else {@code qemu-nbd --connect} ({@link NbdDevices}); needs the nbd module loaded and a free
 * device.</li>
 * </ul>
 * Either way, the same {@code sfdisk}, {@code losetup -r}, {@code blkid} and {@code mount} steps follow.
 * {@link #choose} is a pure function of the {@link HostFacts}; {@link HostFacts#probe} reads them.
 */
public final class KernelPath {
    private KernelPath() {
    }

    /** What the user asked for. */
    public enum Via { FUSE, NBD, AUTO }

    /** The path taken. */
    public enum Kind { FUSE, NBD }

    /**
     * What the host has.
     *
     * @param fuseDevice {@code /dev/fuse} exists
     * @param nbdfuse    nbdfuse is installed
     * @param nbdModule  the kernel's nbd devices exist ({@code /dev/nbd0})
     * @param freeNbd    how many of them no client uses
     * @param nbdClient  nbd-client is installed
     * @param qemuNbd    qemu-nbd is installed
     */
    public record HostFacts(boolean fuseDevice, boolean nbdfuse, boolean nbdModule, int freeNbd, boolean nbdClient,
                            boolean qemuNbd) {
        /** This host's facts. */
        public static HostFacts probe() {
            return new HostFacts(Files.exists(Path.of("/dev/fuse")), Tool.available("nbdfuse"),
                NbdDevices.moduleLoaded(), NbdDevices.free().size(), Tool.available("nbd-client"),
                Tool.available("qemu-nbd"));
        }
    }

    /**
     * The path chosen.
     *
     * @param kind FUSE or NBD
     * @param tool the program that connects it: nbdfuse, nbd-client or qemu-nbd
     * @param why  why this one (for {@code -v})
     */
    public record Choice(Kind kind, String tool, String why) {
    }

    /** Why the nbdfuse path is not possible, or null when it is. */
    static String fuseMissing(HostFacts h) {
        if (!h.fuseDevice()) {
            return "/dev/fuse is missing (load the fuse module, or give the container /dev/fuse)";
        }
        return h.nbdfuse() ? null : "nbdfuse is not installed (Debian package libnbd-bin)";
    }

    /** Why the kernel nbd path is not possible, or null when it is. */
    static String nbdMissing(HostFacts h) {
        if (!h.nbdModule()) {
            return "the kernel's nbd module is not loaded (/dev/nbd0 is missing: modprobe nbd)";
        }
        if (!h.nbdClient() && !h.qemuNbd()) {
            return "neither nbd-client (Debian package nbd-client) nor qemu-nbd (Debian package qemu-utils) is "
                + "installed";
        }
        return h.freeNbd() > 0 ? null : "every /dev/nbdN is in use";
    }

    /** The path to take for {@code via} on a host with {@code h}; an error naming what is missing otherwise. */
    public static Choice choose(Via via, HostFacts h) throws ExternalToolException {
        String fuse = fuseMissing(h);
        String nbd = nbdMissing(h);
        String client = h.nbdClient() ? "nbd-client" : "qemu-nbd";
        switch (via) {
            case FUSE:
                if (fuse != null) {
                    throw new ExternalToolException("--via fuse: " + fuse + "; or try --via nbd");
                }
                return new Choice(Kind.FUSE, "nbdfuse", "asked for with --via fuse");
            case NBD:
                if (nbd != null) {
                    throw new ExternalToolException("--via nbd: " + nbd + "; or try --via fuse");
                }
                return new Choice(Kind.NBD, client, "asked for with --via nbd");
            default:
                if (fuse == null) {
                    return new Choice(Kind.FUSE, "nbdfuse", "/dev/fuse and nbdfuse are there");
                }
                if (nbd == null) {
                    return new Choice(Kind.NBD, client, "the nbdfuse path is not possible: " + fuse);
                }
                throw new ExternalToolException("the backup cannot be presented to the kernel: not through nbdfuse ("
                    + fuse + "), nor through the kernel's nbd device (" + nbd + "); make one of them possible, or "
                    + "restore the disk with 'jbackup restore'");
        }
    }

    /** How {@code c} reads in the log of {@code -v}. */
    public static String describe(Choice c) {
        return (c.kind() == Kind.FUSE ? "nbdfuse file + read-only loop devices"
            : "kernel nbd device connected read-only by " + c.tool() + " + read-only loop devices") + " (" + c.why()
            + ")";
    }
}
