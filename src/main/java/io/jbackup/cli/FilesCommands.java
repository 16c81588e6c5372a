package io.jbackup.cli;

import io.jbackup.engine.Cancellation;
import io.jbackup.engine.RestoreTargetException;
import io.jbackup.error.NotFoundException;
import io.jbackup.error.UsageException;
import io.jbackup.model.BackupInfo;
import io.jbackup.mount.MountSession;
import io.jbackup.mount.MountState;
import io.jbackup.mount.MountedFilesystem;
import io.jbackup.mount.Tool;
import io.jbackup.store.LockMode;
import io.jbackup.store.Repository;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CancellationException;
import java.util.stream.Stream;

/**
 * {@code jbackup files ls|get}: list or copy files of a backup without a visible mount. There is no well-kept Java
 * library that reads ext4, XFS and FAT (the few pure-Java ext4 readers are unmaintained and read no XFS), so both
 * mount the backup behind the scenes exactly as {@code jbackup mount} does, into a private directory under
 * {@code /run/jbackup/files}, and unmount it before they return (also on Ctrl-C and SIGTERM; after SIGKILL the next
 * {@code mount}, {@code umount} or {@code files} removes the leftovers).
 */
@Command(name = "files", mixinStandardHelpOptions = true,
    description = "List or copy files out of a backup without mounting it yourself (it is mounted read-only behind "
        + "the scenes and unmounted at the end; needs what 'jbackup mount' needs).",
    subcommands = {FilesCommands.Ls.class, FilesCommands.Get.class})
public final class FilesCommands implements Runnable {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    /** Where {@code files} mounts backups. */
    static final Path WORK = MountState.ROOT.getParent().resolve("files");

    /** The options of both subcommands and the mount around their work. */
    abstract static class Base implements Callable<Integer> {
        @Mixin
        RepoOptions repo;
        @Mixin
        JsonMixin json;
        @Mixin
        LoggingMixin logging;
        @Mixin
        KernelPathMixin kernelPath;

        @Option(names = "--disk", required = true, paramLabel = "NAME", description = "Disk of the backup.")
        String disk;

        @Option(names = "--vm", paramLabel = "NAME", description = "VM of the disk (when disk names repeat).")
        String vm;

        @Option(names = "--backup", paramLabel = "ID|latest|@TIME", defaultValue = "latest",
            description = "Backup id (or unique prefix), 'latest', or '@' + ISO-8601 time (default: "
                + "${DEFAULT-VALUE}).")
        String backup;

        @Parameters(index = "0", paramLabel = "[PARTITION:]PATH",
            description = "A path in the filesystem of partition PARTITION (1, 2, ..., 'disk' for a filesystem on "
                + "the whole disk, N/VG-LV for a logical volume in partition N); the partition may be left out when "
                + "the disk has one filesystem.")
        String spec;

        /** Does the work on {@code source} (the path in the mounted filesystem) of {@code fs}. */
        abstract int work(BackupInfo backup, MountedFilesystem fs, String path, Path source) throws Exception;

        /** Checks the options before anything is mounted. */
        void check() {
        }

        /** Cancelled by Ctrl-C or SIGTERM: a copy stops (what it wrote is removed) and the backup is unmounted. */
        final Cancellation cancel = new Cancellation();

        @Override
        public Integer call() throws Exception {
            check();
            Path mp = WORK.resolve(ProcessHandle.current().pid() + "-" + System.nanoTime());
            // private: under a directory others can enter, a host user whose uid is that of a guest's user could read
            // that user's files while they are mounted
            Files.createDirectories(WORK);
            Files.setPosixFilePermissions(WORK, PosixFilePermissions.fromString("rwx------"));
            return Interrupts.run(cancel, "stopping (a copy being written is removed), unmounting the backup", () -> {
                try (Repository r = repo.open(LockMode.SHARED)) {
                    BackupInfo b = BackupSelection.select(r, vm, disk, backup).get(0);
                    try (MountSession session = MountSession.open(r, List.of(new MountSession.Target(b, mp)), mp,
                        64L << 20, 8, kernelPath.via,
                        t -> org.slf4j.LoggerFactory.getLogger(FilesCommands.class).info(t))) {
                        return pick(b, session.filesystems());
                    }
                }
            });
        }

        private int pick(BackupInfo b, List<MountedFilesystem> all) throws Exception {
            List<MountedFilesystem> mounted = all.stream().filter(f -> f.path() != null).toList();
            String[] split = split(spec, all.stream().map(MountedFilesystem::name).toList());
            String part = split[0];
            String path = split[1];
            MountedFilesystem fs;
            for (MountedFilesystem f : all) { // N/VG-LV: no logical volume, as partition N was not activated
                if (part == null && f.path() == null && spec.startsWith(f.name() + "/")
                    && spec.indexOf(':') > f.name().length()) {
                    throw new UsageException("partition " + f.name() + " of disk " + b.disk() + " cannot be "
                        + "mounted: " + f.problem());
                }
            }
            if (part == null) {
                java.util.regex.Matcher named = java.util.regex.Pattern.compile("^([0-9]+(?:/[^:/]+)?|disk):")
                    .matcher(spec);
                if (named.find()) {
                    // PARTITION:PATH with a partition the disk does not have: say so, not "no such path"
                    throw new NotFoundException("disk " + b.disk() + " of backup " + b.id() + " has no partition "
                        + named.group(1) + "; it has " + names(all) + ": name one as PARTITION:PATH");
                }
                if (mounted.isEmpty()) { // no partition to name: "e.g. 1:/etc" would send the user on a search
                    throw new UsageException("no filesystem of disk " + b.disk() + " of backup " + b.id() + " can be "
                        + "mounted: " + names(all) + "; restore the disk instead (jbackup restore)");
                }
                if (mounted.size() != 1) {
                    throw new UsageException("disk " + b.disk() + " has " + mounted.size() + " mountable filesystems "
                        + names(all) + ": name one as PARTITION:PATH, e.g. " + mounted.get(0).name() + ":" + path);
                }
                fs = mounted.get(0);
            } else {
                String p = part;
                fs = all.stream().filter(f -> f.name().equals(p)).findFirst().orElseThrow();
                if (fs.path() == null) {
                    throw new UsageException("partition " + part + " of disk " + b.disk() + " cannot be mounted: "
                        + fs.problem());
                }
            }
            Path root = Path.of(fs.path());
            Path source = root.resolve(path.startsWith("/") ? path.substring(1) : path).normalize();
            if (!source.startsWith(root)) {
                throw new UsageException(spec + ": the path leaves the filesystem");
            }
            // the directories on the way are resolved as the guest's links say, and must stay in its filesystem: an
            // absolute or ../ link would otherwise lead this root process into the host's files
            Path parent = source.getParent();
            if (!source.equals(root) && Files.exists(parent)
                && !parent.toRealPath().startsWith(root.toRealPath())) {
                throw new UsageException(spec + ": a symbolic link on the way leads out of the backup's filesystem "
                    + "(to " + parent.toRealPath() + " of this host); name the path the link points to instead");
            }
            if (!Files.exists(source, LinkOption.NOFOLLOW_LINKS)) {
                throw new NotFoundException("no " + path + " in partition " + fs.name() + " of backup " + b.id()
                    + " of disk " + b.disk() + "; list it with: jbackup files ls ... " + fs.name() + ":/");
            }
            cancel.check();
            return work(b, fs, path, source);
        }

        /**
         * {@code [PARTITION:]PATH} as {PARTITION or null, PATH ("/" when empty)}: PARTITION is one of {@code names}
         * ({@code 1}, {@code disk}, or a logical volume {@code 4/VG-LV}), the longest that prefixes the spec.
         */
        static String[] split(String spec, List<String> names) {
            String part = null;
            for (String n : names) {
                if (spec.startsWith(n + ":") && (part == null || n.length() > part.length())) {
                    part = n;
                }
            }
            String path = part == null ? spec : spec.substring(part.length() + 1);
            return new String[] {part, path.isEmpty() ? "/" : path};
        }

        private static String names(List<MountedFilesystem> all) {
            List<String> s = new ArrayList<>();
            for (MountedFilesystem f : all) {
                s.add(f.name() + " (" + (f.type() == null ? "unknown" : f.type()) + (f.path() == null
                    ? ", not mountable: " + f.problem() : "") + ")");
            }
            return s.toString();
        }
    }

    /** One entry of a listing. */
    public record Entry(String name, String type, String mode, long size, int uid, int gid, Instant mtime,
                        String target) {
        static Entry of(Path p, String name) throws IOException {
            PosixFileAttributes a = Files.readAttributes(p, PosixFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
            Map<String, Object> unix = Files.readAttributes(p, "unix:mode,uid,gid", LinkOption.NOFOLLOW_LINKS);
            int format = (Integer) unix.get("mode") & 0170000; // S_IFMT
            String type = a.isDirectory() ? "dir" : a.isRegularFile() ? "file" : a.isSymbolicLink() ? "symlink"
                : format == 0010000 ? "fifo" : format == 0140000 ? "socket" : format == 0020000 ? "char-device"
                : format == 0060000 ? "block-device" : "other";
            return new Entry(name, type, String.format(Locale.ROOT, "%04o", (Integer) unix.get("mode") & 07777),
                a.size(), (Integer) unix.get("uid"), (Integer) unix.get("gid"), a.lastModifiedTime().toInstant(),
                a.isSymbolicLink() ? Files.readSymbolicLink(p).toString() : null);
        }
    }

    @Command(name = "ls", mixinStandardHelpOptions = true,
        description = "List a directory (or one file) of a backup: mode, owner, size, modification time, name.")
    static final class Ls extends Base {
        @Override
        int work(BackupInfo backup, MountedFilesystem fs, String path, Path source) throws IOException {
            List<Entry> entries = new ArrayList<>();
            // what the kernel cannot read (EIO: a damaged chunk under the directory or an entry's inode) is named,
            // the rest listed, exit 3, as files get does
            List<String> errors = new ArrayList<>();
            if (Files.isDirectory(source, LinkOption.NOFOLLOW_LINKS)) {
                List<Path> names = List.of();
                try (Stream<Path> s = Files.list(source)) {
                    names = s.sorted().toList();
                } catch (IOException | java.io.UncheckedIOException e) {
                    errors.add(unreadable(fs, source, e));
                }
                for (Path p : names) {
                    try {
                        entries.add(Entry.of(p, p.getFileName().toString()));
                    } catch (IOException e) {
                        errors.add(unreadable(fs, p, e));
                    }
                }
            } else {
                try {
                    entries.add(Entry.of(source, source.getFileName().toString()));
                } catch (IOException e) {
                    errors.add(unreadable(fs, source, e));
                }
            }
            if (json.enabled()) {
                Map<String, Object> out = new LinkedHashMap<>();
                out.put("status", errors.isEmpty() ? "ok" : "partial");
                out.put("disk", backup.disk());
                out.put("backupId", backup.id());
                out.put("partition", fs.name());
                out.put("filesystem", fs.type());
                out.put("path", path);
                out.put("entries", entries);
                out.put("errors", errors);
                json.print(out);
            } else {
                for (Entry e : entries) {
                    String perms = rwx(Integer.parseInt(e.mode(), 8));
                    System.out.println(String.format(Locale.ROOT, "%s%s %5d %5d %12d %s %s%s",
                        typeChar(e.type()), perms, e.uid(),
                        e.gid(), e.size(), e.mtime(), e.name(), e.target() == null ? "" : " -> " + e.target()));
                }
                for (String e : errors) {
                    System.err.println("jbackup: " + e);
                }
                if (!errors.isEmpty()) {
                    System.err.println("jbackup: some of " + path + " could not be read (run 'jbackup verify' to "
                        + "find damaged backups)");
                }
            }
            return errors.isEmpty() ? ExitCodes.OK : ExitCodes.PARTIAL;
        }

        /** What the kernel said of {@code p} that it could not read, named as PARTITION:PATH. */
        private static String unreadable(MountedFilesystem fs, Path p, Exception e) {
            IOException io = e instanceof java.io.UncheckedIOException u ? u.getCause() : (IOException) e;
            String why = io instanceof java.nio.file.FileSystemException f && f.getReason() != null ? f.getReason()
                : io.getMessage();
            return "cannot read " + fs.name() + ":/" + Path.of(fs.path()).relativize(p) + ": " + why;
        }

        /** The type letter of {@code ls -l}. */
        private static char typeChar(String type) {
            return switch (type) {
                case "dir" -> 'd';
                case "symlink" -> 'l';
                case "fifo" -> 'p';
                case "socket" -> 's';
                case "char-device" -> 'c';
                case "block-device" -> 'b';
                default -> '-';
            };
        }

        /**
         * The permission letters of {@code ls -l} for the 12 low bits of a mode: {@code rwxr-xr-x}, with setuid and
         * setgid as {@code s} ({@code S} without execute) and the sticky bit as {@code t} ({@code T}), so that a
         * guest's setuid program does not list as an ordinary one.
         */
        static String rwx(int mode) {
            String s = "rwxrwxrwx";
            StringBuilder b = new StringBuilder();
            for (int i = 0; i < 9; i++) {
                b.append((mode & (1 << (8 - i))) != 0 ? s.charAt(i) : '-');
            }
            int[][] special = {{04000, 2}, {02000, 5}, {01000, 8}}; // setuid, setgid, sticky: x of user, group, other
            for (int[] sp : special) {
                if ((mode & sp[0]) != 0) {
                    boolean x = b.charAt(sp[1]) == 'x';
                    char c = sp[0] == 01000 ? 't' : 's';
                    b.setCharAt(sp[1], x ? c : Character.toUpperCase(c));
                }
            }
            return b.toString();
        }
    }

    @Command(name = "get", mixinStandardHelpOptions = true,
        description = "Copy a file or a directory tree out of a backup, keeping modes, owners, times and symbolic "
            + "links (cp -a). A file that cannot be read (a damaged chunk) is named, the rest is copied, and the "
            + "exit code is 3; a target that cannot be written (full, read-only) exits 4 and the new copy is "
            + "removed.")
    static final class Get extends Base {
        @Option(names = "--to", required = true, paramLabel = "DEST",
            description = "Where to copy: a new name, or an existing directory to copy into. Nothing is "
                + "overwritten.")
        Path to;

        @Override
        void check() {
            if (Files.exists(to, LinkOption.NOFOLLOW_LINKS) && !Files.isDirectory(to)) {
                throw new UsageException("--to " + to + " exists and is not a directory: name a new file or "
                    + "directory, or an existing directory to copy into (nothing is overwritten)");
            }
            Path parent = to.toAbsolutePath().getParent();
            if (!Files.exists(to, LinkOption.NOFOLLOW_LINKS) && parent != null && !Files.isDirectory(parent)) {
                // else cp fails on every file, reported as unreadable files of a damaged backup (exit 3)
                throw new UsageException("--to " + to + ": directory " + parent + " does not exist; create it "
                    + "first, or name an existing directory to copy into");
            }
        }

        @Override
        int work(BackupInfo backup, MountedFilesystem fs, String path, Path source) throws IOException {
            // the guest path's last name; its root (whose source is the mount's own directory) copies as "root"
            Path named = Path.of(path).getFileName();
            Path dest = Files.isDirectory(to) ? to.resolve(named == null ? "root" : named.toString()) : to;
            if (Files.exists(dest, LinkOption.NOFOLLOW_LINKS)) {
                throw new UsageException(dest + " exists: copy into another directory, or move it away first "
                    + "(nothing is overwritten)");
            }
            Tool.Result r;
            try {
                r = Tool.execUntilDone(List.of("cp", "-a", "--", source.toString(), dest.toString()), cancel);
            } catch (CancellationException e) {
                remove(dest);
                throw e;
            }
            // cp names the file each failure is about: one under the mount could not be read (a damaged chunk),
            // any other could not be written (the target is full or read-only): no fault of the backup
            List<String> errors = new ArrayList<>();
            List<String> unwritable = new ArrayList<>();
            for (String line : r.stderr().split("\n")) {
                if (!line.isBlank()) {
                    (line.contains(fs.path()) ? errors : unwritable).add(line.replace(fs.path(), fs.name() + ":"));
                }
            }
            if (!unwritable.isEmpty()) {
                remove(dest);
                throw new RestoreTargetException(dest.toString(), new IOException(String.join("; ",
                    unwritable.subList(0, Math.min(3, unwritable.size()))) + (unwritable.size() > 3 ? "; and "
                    + (unwritable.size() - 3) + " more" : "")));
            }
            long[] count = new long[2];
            if (Files.exists(dest, LinkOption.NOFOLLOW_LINKS)) {
                try (Stream<Path> s = Files.walk(dest)) {
                    s.filter(p -> Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS)).forEach(p -> {
                        count[0]++;
                        count[1] += p.toFile().length();
                    });
                }
            }
            boolean partial = !r.ok();
            if (partial && errors.isEmpty()) {
                errors.add("cp -a exited with " + r.exitCode());
            }
            if (json.enabled()) {
                Map<String, Object> out = new LinkedHashMap<>();
                out.put("status", partial ? "partial" : "ok");
                out.put("disk", backup.disk());
                out.put("backupId", backup.id());
                out.put("partition", fs.name());
                out.put("path", path);
                out.put("to", dest.toAbsolutePath().toString());
                out.put("files", count[0]);
                out.put("bytes", count[1]);
                out.put("errors", errors);
                json.print(out);
            } else {
                for (String e : errors) {
                    System.out.println("  not copied: " + e);
                }
                if (partial || !logging.quiet) {
                    System.out.println("jbackup: copied " + path + " of backup " + backup.id() + " (partition "
                        + fs.name() + ") to " + dest + ": " + io.jbackup.text.Human.count(count[0], "file") + ", "
                        + Sizes.format(count[1])
                        + (partial ? "; some could not be read (run 'jbackup verify' to find damaged backups)"
                        : ""));
                }
            }
            return partial ? ExitCodes.PARTIAL : ExitCodes.OK;
        }

        /** Removes {@code dest}, the new file or tree a copy that failed or was stopped has written. */
        private static void remove(Path dest) throws IOException {
            if (Files.exists(dest, LinkOption.NOFOLLOW_LINKS)) {
                Tool.run(List.of("rm", "-rf", "--", dest.toString()));
            }
        }
    }
}
