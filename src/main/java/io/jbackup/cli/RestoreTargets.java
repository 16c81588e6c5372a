package io.jbackup.cli;

import io.jbackup.error.UsageException;
import io.jbackup.engine.FileTarget;
import io.jbackup.engine.NbdTarget;
import io.jbackup.engine.NbdTargetException;
import io.jbackup.engine.RestoreTarget;
import io.jbackup.nbd.client.ClientOptions;
import io.jbackup.nbd.client.NbdClient;
import io.jbackup.nbd.client.NbdUri;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Turns {@code restore}'s {@code --to} and {@code --format} into one target per disk, and opens them.
 *
 * <p>A single disk goes to the one {@code --to}. A whole VM set ({@code --vm} without {@code --disk}) goes to
 * {@code --to DISK=TARGET} per disk, and the disks without one into the unnamed {@code --to DIR}, which is always a
 * directory (created when missing): {@code DIR/DISK.raw}, or {@code DIR/DISK.qcow2} with {@code --format qcow2}. A
 * file's format is {@code --format}, else its extension: {@code .qcow2} is qcow2, {@code .raw} and {@code .img} are
 * raw, anything else is raw with a note.
 */
final class RestoreTargets {
    private RestoreTargets() {
    }

    /** The image formats restore writes to files. */
    enum Format {
        RAW, QCOW2;

        String text() {
            return name().toLowerCase(Locale.ROOT);
        }

        /** {@code --format} text; {@code null} stays {@code null} (from the extension). */
        static Format parse(String s) {
            if (s == null) {
                return null;
            }
            for (Format f : values()) {
                if (f.text().equals(s.toLowerCase(Locale.ROOT))) {
                    return f;
                }
            }
            throw new UsageException("--format " + s + ": expected raw or qcow2 (for another format, "
                + "restore a raw image and convert it with qemu-img convert -O FORMAT)");
        }
    }

    /** Where one disk goes: an NBD URI ({@code format} null) or a file or device in {@code format}. */
    record Plan(String target, Format format) {
        boolean nbd() {
            return format == null;
        }
    }

    /**
     * One plan per disk.
     *
     * @param disks     the disks being restored
     * @param targets   the {@code --to} values
     * @param wholeSet  restoring a VM's backup set ({@code --vm} without {@code --disk})
     * @param format    {@code --format}, or null for the extension
     * @param notes     receives notes for the user (an unknown extension)
     */
    static Map<String, Plan> plan(List<String> disks, List<String> targets, boolean wholeSet, Format format,
                                  Consumer<String> notes) {
        Map<String, String> named = new LinkedHashMap<>();
        List<String> unnamed = targets.stream().filter(t -> !looksNamed(t)).toList();
        for (String t : targets) {
            if (looksNamed(t)) {
                int eq = t.indexOf('=');
                named.put(t.substring(0, eq), t.substring(eq + 1));
            }
        }
        for (String d : named.keySet()) {
            if (!disks.contains(d)) {
                throw new UsageException("--to " + d + "=...: no disk " + d + " is being restored (disks: "
                    + String.join(", ", disks) + ")");
            }
        }
        if (unnamed.size() > 1) {
            throw new UsageException("--to is given " + unnamed.size() + " times without a disk name; "
                + (wholeSet ? "give one directory, or name each disk: --to DISK=TARGET" : "give one target"));
        }
        Map<String, Plan> m = new LinkedHashMap<>();
        Path dir = null;
        for (String d : disks) {
            String t = named.get(d);
            if (t == null && !unnamed.isEmpty() && !wholeSet) {
                t = unnamed.get(0);
            }
            if (t != null) {
                m.put(d, planOne(t, format, notes));
                continue;
            }
            if (unnamed.isEmpty()) {
                throw new UsageException("no target for disk " + d + ": give --to DIR (a directory for "
                    + "DIR/" + d + ".raw) or --to " + d + "=TARGET");
            }
            if (dir == null) {
                dir = directory(unnamed.get(0));
            }
            Format f = format == null ? Format.RAW : format;
            m.put(d, new Plan(dir.resolve(d + "." + f.text()).toString(), f));
        }
        return m;
    }

    private static Plan planOne(String target, Format format, Consumer<String> notes) {
        if (isNbd(target)) {
            if (format == Format.QCOW2) {
                throw new UsageException("--format qcow2 with an NBD target: the format is the NBD "
                    + "server's (e.g. qemu-nbd -f qcow2); leave out --format");
            }
            return new Plan(target, null);
        }
        if (format != null) {
            return new Plan(target, format);
        }
        Path p = Path.of(target);
        String name = p.getFileName() == null ? "" : p.getFileName().toString().toLowerCase(Locale.ROOT);
        if (name.endsWith(".qcow2")) {
            return new Plan(target, Format.QCOW2);
        }
        boolean device = Files.exists(p) && !Files.isRegularFile(p) && !Files.isDirectory(p);
        if (!device && !name.endsWith(".raw") && !name.endsWith(".img")) {
            int dot = name.lastIndexOf('.');
            notes.accept("restore target " + target + (dot > 0 ? " has the extension " + name.substring(dot)
                : " has no extension") + ", so a raw image is written; --format raw or --format qcow2 chooses "
                + "explicitly");
        }
        return new Plan(target, Format.RAW);
    }

    private static Path directory(String target) {
        if (isNbd(target)) {
            throw new UsageException("--to " + target + ": a whole VM restores into a directory; "
                + "for an NBD target name the disk: --to DISK=" + target);
        }
        Path dir = Path.of(target);
        if (Files.exists(dir) && !Files.isDirectory(dir)) {
            throw new UsageException("--to " + target + " is not a directory: a whole VM (--vm without "
                + "--disk) restores into a directory, one image per disk; name another directory, or give "
                + "--to DISK=TARGET per disk");
        }
        try {
            return Files.createDirectories(dir);
        } catch (IOException e) {
            throw new UsageException("cannot create the restore directory " + dir + ": "
                + (e instanceof java.nio.file.AccessDeniedException ? "permission denied" : e.getMessage()), e);
        }
    }

    /** Opens a planned target for an image of {@code size} bytes. */
    static RestoreTarget open(Plan p, long size, boolean force, boolean zero, boolean inPlace, TlsOptions tls)
            throws IOException {
        if (p.nbd()) {
            NbdUri u = NbdUri.parse(p.target());
            NbdClient c;
            try {
                c = NbdClient.connect(u, ClientOptions.defaults().withTls(tls.toConfig(u.tls())));
            } catch (IOException e) {
                throw new NbdTargetException.Unreachable(p.target(), e);
            }
            try {
                return new NbdTarget(c, size, 16);
            } catch (RuntimeException e) {
                c.close();
                throw e;
            }
        }
        return p.format() == Format.QCOW2 ? Qcow2Target.create(Path.of(p.target()), size, force)
            : FileTarget.open(Path.of(p.target()), size, force, zero, inPlace);
    }

    private static boolean isNbd(String target) {
        return target.startsWith("nbd://") || target.startsWith("nbds://") || target.startsWith("nbd+unix://")
            || target.startsWith("nbds+unix://");
    }

    private static boolean looksNamed(String t) {
        int eq = t.indexOf('=');
        int scheme = t.indexOf("://");
        int slash = t.indexOf('/');
        return eq > 0 && (scheme < 0 || eq < scheme) && (slash < 0 || eq < slash);
    }
}
