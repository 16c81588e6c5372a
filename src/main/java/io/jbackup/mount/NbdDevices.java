package io.jbackup.mount;

import io.jbackup.engine.ExternalToolException;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * The kernel's nbd devices ({@code /dev/nbdN}, where the nbd module is loaded), connected read-only to the mount's
 * NBD socket: {@code nbd-client -unix SOCKET /dev/nbdN -name EXPORT -readonly}, or where nbd-client is missing
 * {@code qemu-nbd --fork --read-only --connect=/dev/nbdN --image-opts
 * driver=raw,file.driver=nbd,file.server.type=unix,file.server.path=SOCKET,file.export=EXPORT}; both run under
 * {@code setsid}, so a Ctrl-C on the terminal reaches only jbackup. A device is free while
 * {@code /sys/block/nbdN/pid} is absent; that file holds the pid of the client that connected it.
 *
 * <p>The device is recorded in the {@link MountState} before it is connected and disconnected ({@code nbd-client -d}
 * or {@code qemu-nbd -d}) by every clean-up path, as long as it is still connected by the client recorded.
 */
public final class NbdDevices {
    private static final Path SYS = Path.of("/sys/block");
    /** How long a connected device may take to show its size. */
    private static final long READY_MILLIS = 10_000;
    /** Devices tried when another process takes the free one first. */
    private static final int ATTEMPTS = 4;

    private NbdDevices() {
    }

    /** Whether the kernel has nbd devices (the module is loaded). */
    public static boolean moduleLoaded() {
        return Files.exists(Path.of("/dev/nbd0"));
    }

    /** The nbd devices no client uses, {@code /dev/nbd0} first. */
    public static List<String> free() {
        List<String> out = new ArrayList<>();
        try (var s = Files.list(SYS)) {
            for (Path p : s.filter(d -> d.getFileName().toString().matches("nbd\\d+")).sorted(Comparator
                .comparingInt(d -> Integer.parseInt(d.getFileName().toString().substring(3)))).toList()) {
                Path dev = Path.of("/dev", p.getFileName().toString());
                if (!Files.exists(p.resolve("pid")) && Files.exists(dev)) {
                    out.add(dev.toString());
                }
            }
        } catch (IOException e) {
            return out;
        }
        return out;
    }

    /** The command that connects {@code device} read-only to {@code export} on {@code socket} with {@code tool}. */
    static List<String> connectCommand(String tool, String device, Path socket, String export) {
        if ("nbd-client".equals(tool)) {
            return List.of("nbd-client", "-unix", socket.toString(), device, "-name", export, "-readonly");
        }
        return List.of("qemu-nbd", "--fork", "--read-only", "--connect=" + device, "--image-opts",
            "driver=raw,file.driver=nbd,file.server.type=unix,file.server.path=" + opt(socket.toString())
                + ",file.export=" + opt(export));
    }

    /** The command that disconnects {@code device} with {@code tool}. */
    static List<String> disconnectCommand(String tool, String device) {
        return "nbd-client".equals(tool) ? List.of("nbd-client", "-d", device) : List.of("qemu-nbd", "-d", device);
    }

    /** A value in QEMU's option syntax: a comma is doubled. */
    static String opt(String value) {
        return value.replace(",", ",,");
    }

    /** The pid of the client that connected {@code device}, or 0 when it is not connected. */
    static long clientPid(String device) {
        try {
            return Long.parseLong(Files.readString(SYS.resolve(Path.of(device).getFileName()).resolve("pid")).strip());
        } catch (IOException | NumberFormatException e) {
            return 0;
        }
    }

    /**
     * Connects a free nbd device read-only to {@code export} on {@code socket} with {@code tool} and returns it once
     * it shows its size; the device is recorded in {@code state} before it is connected, its client's pid after.
     */
    public static String connect(MountState state, String tool, Path socket, String export) throws IOException {
        Path bin = Tool.locate(tool);
        if (bin == null) {
            throw new ExternalToolException(tool + " is not installed (Debian package "
                + Tool.PACKAGES.getOrDefault(tool, tool) + ")");
        }
        String last = "no free /dev/nbdN";
        for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
            List<String> free = free();
            if (free.isEmpty()) {
                break;
            }
            String device = free.get(0);
            MountState.Nbd rec = new MountState.Nbd(device, tool, 0);
            synchronized (state) {
                state.data().nbd.add(rec);
                state.save();
            }
            List<String> cmd = new ArrayList<>(List.of("setsid"));
            cmd.addAll(connectCommand(tool, device, socket, export));
            cmd.set(1, bin.toString());
            Tool.Result r = Tool.exec(cmd);
            long pid = r.ok() ? awaitConnected(device) : 0;
            synchronized (state) {
                List<MountState.Nbd> n = state.data().nbd;
                if (pid > 0) {
                    n.set(n.indexOf(rec), new MountState.Nbd(device, tool, pid));
                } else {
                    disconnect(rec);
                    n.remove(rec);
                }
                state.save();
            }
            if (pid > 0) {
                return device;
            }
            last = device + ": " + (r.ok() ? "connected, but showed no size within " + READY_MILLIS / 1000 + " s"
                : String.join(" ", connectCommand(tool, device, socket, export)) + " failed: " + r.said());
        }
        throw new ExternalToolException("could not connect a kernel nbd device: " + last);
    }

    private static long awaitConnected(String device) throws IOException {
        Path size = SYS.resolve(Path.of(device).getFileName()).resolve("size");
        long deadline = System.currentTimeMillis() + READY_MILLIS;
        try {
            while (System.currentTimeMillis() < deadline) {
                long pid = clientPid(device);
                if (pid > 0 && Files.exists(size) && !Files.readString(size).strip().equals("0")) {
                    return pid;
                }
                Thread.sleep(20);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while connecting " + device);
        }
        return 0;
    }

    /**
     * Whether a recorded device is still ours: disconnected (what is left on it, loop devices, is ours), or held by
     * the client recorded (any, when the mount was killed before it recorded the pid).
     */
    static boolean stillOurs(MountState.Nbd rec) {
        long pid = clientPid(rec.device());
        return pid == 0 || rec.pid() == 0 || pid == rec.pid();
    }

    /**
     * Disconnects a recorded device while it is still connected by the client recorded (any, when the mount was
     * killed before it recorded the pid); returns the problems, empty when it is free or another's now.
     */
    public static List<String> disconnect(MountState.Nbd rec) throws IOException {
        long pid = clientPid(rec.device());
        if (pid == 0 || !stillOurs(rec)) {
            return List.of();
        }
        String tool = Tool.available(rec.tool()) ? rec.tool() : Tool.available("nbd-client") ? "nbd-client"
            : "qemu-nbd";
        Tool.Result r = Tool.exec(disconnectCommand(tool, rec.device()));
        long deadline = System.currentTimeMillis() + 5_000;
        while (clientPid(rec.device()) == pid && System.currentTimeMillis() < deadline) {
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        return clientPid(rec.device()) == pid ? List.of("could not disconnect " + rec.device() + " ("
            + String.join(" ", disconnectCommand(tool, rec.device())) + ": " + r.said() + ")") : List.of();
    }
}
