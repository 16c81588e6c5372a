package io.jbackup.testutil;

import java.nio.file.Path;

/**
 * Builds test images with the real qemu tools: {@code qemu-img create}, {@code qemu-img bitmap --add},
 * {@code qemu-io -c 'write -P ...'}, and serves them with {@code qemu-nbd} on a unix socket.
 */
public final class QemuImages {
    private QemuImages() {
    }

    /** {@code qemu-img create -f qcow2 FILE SIZE}. */
    public static Path qcow2(Path file, String size) {
        Proc.run("qemu-img", "create", "-q", "-f", "qcow2", file.toString(), size);
        return file;
    }

    /** {@code qemu-img create -f qcow2 -b BACKING -F qcow2 FILE}. */
    public static Path qcow2Overlay(Path file, Path backing) {
        Proc.run("qemu-img", "create", "-q", "-f", "qcow2", "-b", backing.toString(), "-F", "qcow2", file.toString());
        return file;
    }

    /** {@code qemu-img bitmap --add FILE NAME}. */
    public static void addBitmap(Path image, String bitmap) {
        Proc.run("qemu-img", "bitmap", "--add", image.toString(), bitmap);
    }

    /** Runs qemu-io commands on an image, e.g. {@code "write -P 0xab 0 64k"}, {@code "discard 1M 64k"}, {@code "write -z 2M 1M"}. */
    public static void io(Path image, String format, String... commands) {
        String[] cmd = new String[4 + 2 * commands.length];
        int i = 0;
        cmd[i++] = "qemu-io";
        cmd[i++] = "-f";
        cmd[i++] = format;
        for (String c : commands) {
            cmd[i++] = "-c";
            cmd[i++] = c;
        }
        cmd[i] = image.toString();
        Proc.run(cmd);
    }

    /** Converts an image to raw ({@code qemu-img convert -O raw}), the reference for SHA-256 comparisons. */
    public static Path toRaw(Path image, Path raw) {
        Proc.run("qemu-img", "convert", "-O", "raw", image.toString(), raw.toString());
        return raw;
    }

    /**
     * Serves {@code image} with {@code qemu-nbd} on a unix socket in {@code dir}; extra args such as
     * {@code "-r", "-B", "bitmap", "-A"} are passed through. Close the handle to stop it.
     */
    public static Proc.Background qemuNbd(Path dir, Path image, String format, String... extra) {
        return qemuNbd("qemu-nbd", dir, image, format, extra);
    }

    /** As above, with the given qemu-nbd binary (QEMU 10's: {@link Qemu10#qemuNbd}). */
    public static Proc.Background qemuNbd(String binary, Path dir, Path image, String format, String... extra) {
        Path sock = dir.resolve("qemu-nbd-" + System.nanoTime() + ".sock");
        String[] cmd = new String[6 + extra.length + 1];
        int i = 0;
        cmd[i++] = binary;
        cmd[i++] = "-t";
        cmd[i++] = "-k";
        cmd[i++] = sock.toString();
        cmd[i++] = "-f";
        cmd[i++] = format;
        for (String e : extra) {
            cmd[i++] = e;
        }
        cmd[i] = image.toString();
        Proc.Background bg = Proc.start(dir.resolve(sock.getFileName() + ".log"), cmd);
        return bg.awaitSocket(sock); // -t: the probe connection does not end the server
    }

    /** The unix socket path of a {@link #qemuNbd} handle. */
    public static Path socketOf(Proc.Background bg) {
        return Path.of(bg.cmd().get(3));
    }

    /** An {@code nbd+unix:///EXPORT?socket=PATH} URI for a qemu-nbd handle (default export ""). */
    public static String uriOf(Proc.Background bg) {
        return "nbd+unix:///?socket=" + socketOf(bg);
    }
}
