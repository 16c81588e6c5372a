package io.jbackup.faults;

import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.LinkedHashSet;
import java.util.Random;
import java.util.Set;

/**
 * A qcow2 source image with a persistent dirty bitmap, changed between backups with {@code qemu-io} writes of
 * seeded random (incompressible) data, and its reference snapshots ({@code qemu-img convert -O raw}).
 */
final class FaultImage {
    static final String BITMAP = "b";
    static final int CHUNK = 64 << 10;

    final Path dir;
    final Path image;
    final long size;
    final Random rnd;
    private int writes;

    /** Creates {@code size} bytes: random data in the first {@code dataBytes}, the rest unallocated. */
    FaultImage(Path dir, long size, long dataBytes, Random rnd) throws IOException {
        this.dir = dir;
        this.size = size;
        this.rnd = rnd;
        Path raw = dir.resolve("initial.raw");
        byte[] b = new byte[(int) dataBytes];
        rnd.nextBytes(b);
        Files.write(raw, b);
        Proc.run("truncate", "-s", Long.toString(size), raw.toString());
        image = dir.resolve("source.qcow2");
        Proc.run("qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw.toString(), image.toString());
        Files.delete(raw);
        QemuImages.addBitmap(image, BITMAP);
    }

    /** Writes {@code len} fresh random bytes at {@code offset} through qemu-io (the bitmap marks them dirty). */
    void write(long offset, int len) throws IOException {
        byte[] b = new byte[len];
        rnd.nextBytes(b);
        Path src = dir.resolve("write-" + (writes++) + ".bin");
        Files.write(src, b);
        QemuImages.io(image, "qcow2", "write -q -s " + src + " " + offset + " " + len);
        Files.delete(src);
    }

    /** A few random writes (1..3, 256 KiB .. 1.25 MiB each, 512-byte aligned) and sometimes a zeroed range. */
    String mutate() throws IOException {
        StringBuilder what = new StringBuilder();
        int n = 1 + rnd.nextInt(3);
        for (int i = 0; i < n; i++) {
            int len = CHUNK * (4 + rnd.nextInt(17));
            long off = 512L * rnd.nextInt((int) ((size - len) / 512));
            write(off, len);
            what.append("write ").append(off).append('+').append(len).append("; ");
        }
        if (rnd.nextInt(4) == 0) {
            int len = CHUNK * (1 + rnd.nextInt(4));
            long off = (long) CHUNK * rnd.nextInt((int) ((size - len) / CHUNK));
            QemuImages.io(image, "qcow2", "write -q -z " + off + " " + len);
            what.append("zero ").append(off).append('+').append(len).append("; ");
        }
        return what.toString();
    }

    /** The reference: {@code qemu-img convert -O raw} of the image now. */
    Path snapshot(Path raw) {
        return QemuImages.toRaw(image, raw);
    }

    /**
     * Serves the image read-only with its bitmap and allocation depth: {@code qemu-nbd -r -B b -A -e 8}. Several
     * connections at once (like qemu-storage-daemon or a VM's NBD server): a stalled connection that a proxy keeps
     * open must not hold the only slot while the backup reconnects.
     */
    Proc.Background serve() {
        return QemuImages.qemuNbd(dir, image, "qcow2", "-r", "-B", BITMAP, "-A", "-e", "8");
    }

    /**
     * Serves it as {@link #serve} does, but reads throttled to {@code bytesPerSecond} (a qemu throttle filter over
     * the qcow2 node), so that a backup lasts long enough to be interrupted in the middle.
     */
    Proc.Background serveThrottled(long bytesPerSecond) {
        Path sock = dir.resolve("throttled-" + System.nanoTime() + ".sock");
        return Proc.start(dir.resolve(sock.getFileName() + ".log"), "qemu-nbd", "-t", "-k", sock.toString(), "-r",
            "-B", BITMAP, "-A", "--object", "throttle-group,id=tg0,x-bps-read=" + bytesPerSecond, "--image-opts",
            "driver=throttle,throttle-group=tg0,file.driver=qcow2,file.file.driver=file,file.file.filename=" + image)
            .awaitPath(sock);
    }

    /** SHA-256 (hex) of each distinct, not all-zero, 64 KiB chunk of a raw file. */
    static Set<String> chunkDigests(Path raw) {
        Set<String> out = new LinkedHashSet<>();
        try (InputStream in = Files.newInputStream(raw)) {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            byte[] buf = new byte[CHUNK];
            while (true) {
                int n = in.readNBytes(buf, 0, CHUNK);
                if (n <= 0) {
                    break;
                }
                boolean zero = true;
                for (int i = 0; i < n && zero; i++) {
                    zero = buf[i] == 0;
                }
                if (!zero) {
                    md.update(buf, 0, n);
                    out.add(HexFormat.of().formatHex(md.digest()));
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        return out;
    }
}
