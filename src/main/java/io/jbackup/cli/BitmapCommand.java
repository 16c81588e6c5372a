package io.jbackup.cli;

import io.jbackup.engine.QemuImg;
import io.jbackup.error.NotFoundException;
import io.jbackup.error.UsageException;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code jbackup bitmap add|remove|list --image FILE}: persistent dirty bitmaps of a qcow2 image that no process
 * has open (a VM that is off), through {@code qemu-img bitmap} and {@code qemu-img info}. With them an offline
 * disk's incremental chain is kept by hand: back up with {@code qemu-nbd -r -A -B OLD} and {@code --bitmap OLD},
 * then add the next bitmap and remove the old one (docs/live-backup.md, "Offline disks").
 */
@Command(name = "bitmap", mixinStandardHelpOptions = true,
    description = "Dirty bitmaps of an offline qcow2 image (wraps qemu-img bitmap / qemu-img info).",
    subcommands = {BitmapCommand.ListBitmaps.class, BitmapCommand.Add.class, BitmapCommand.Remove.class})
public final class BitmapCommand implements Runnable {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    /** Options shared by the subcommands. */
    abstract static class Base implements Callable<Integer> {
        @Option(names = "--image", required = true, paramLabel = "FILE", description = "The qcow2 image.")
        Path image;

        @Mixin
        JsonMixin json;

        @Mixin
        LoggingMixin logging;
    }

    @Command(name = "list", mixinStandardHelpOptions = true,
        description = "List the image's persistent dirty bitmaps.")
    static final class ListBitmaps extends Base {
        @Override
        public Integer call() throws IOException {
            List<QemuImg.Bitmap> bms = QemuImg.bitmaps(image);
            if (json.enabled()) {
                Map<String, Object> out = new LinkedHashMap<>();
                out.put("image", image.toString());
                out.put("bitmaps", bms);
                json.print(out);
            } else if (bms.isEmpty()) {
                System.out.println(image + ": no dirty bitmaps");
            } else {
                for (QemuImg.Bitmap b : bms) {
                    System.out.println(String.format(Locale.ROOT, "%s  granularity %s  %s%s", b.name(),
                        ConsoleProgress.bytes(b.granularity()), b.recording() ? "recording" : "disabled",
                        b.inUse() ? "  in-use (the image is open, or was not closed cleanly: then the bitmap is "
                            + "inconsistent)" : ""));
                }
            }
            return ExitCodes.OK;
        }
    }

    @Command(name = "add", mixinStandardHelpOptions = true,
        description = "Add a persistent dirty bitmap that records writes from now on.")
    static final class Add extends Base {
        @Option(names = "--name", required = true, paramLabel = "NAME", description = "Bitmap name.")
        String name;

        @Option(names = "--disabled", description = "Add it disabled (not recording).")
        boolean disabled;

        @Option(names = "--granularity", paramLabel = "BYTES",
            description = "Bytes per bit, a power of two from 512 (default: the image's cluster size).")
        Long granularity;

        @Override
        public Integer call() throws IOException {
            if (QemuImg.bitmaps(image).stream().anyMatch(b -> b.name().equals(name))) {
                throw new UsageException(image + " already has a bitmap named " + name
                    + " (list them: jbackup bitmap list --image " + image + ")");
            }
            List<String> args = new ArrayList<>(List.of("bitmap", "--add", "-f", "qcow2"));
            if (disabled) {
                args.add("--disable");
            }
            if (granularity != null) {
                if (granularity < 512 || Long.bitCount(granularity) != 1 || granularity > (1L << 31)) {
                    throw new UsageException("--granularity " + granularity
                        + " (expected: a power of two from 512 to 2 GiB)");
                }
                args.addAll(List.of("-g", granularity.toString()));
            }
            args.addAll(List.of(image.toString(), name));
            QemuImg.check(image, args.toArray(String[]::new));
            done("added", name);
            return ExitCodes.OK;
        }

        private void done(String what, String n) {
            if (json.enabled()) {
                json.print(Map.of("image", image.toString(), what, n));
            } else if (!logging.quiet) {
                System.out.println(image + ": " + what + " bitmap " + n);
            }
        }
    }

    @Command(name = "remove", mixinStandardHelpOptions = true, description = "Remove a persistent dirty bitmap.")
    static final class Remove extends Base {
        @Option(names = "--name", required = true, paramLabel = "NAME", description = "Bitmap name.")
        String name;

        @Override
        public Integer call() throws IOException {
            List<QemuImg.Bitmap> bms = QemuImg.bitmaps(image);
            if (bms.stream().noneMatch(b -> b.name().equals(name))) {
                throw new NotFoundException(image + " has no bitmap named " + name + " (it has: "
                    + (bms.isEmpty() ? "none" : String.join(", ", bms.stream().map(QemuImg.Bitmap::name).toList())) + ")");
            }
            QemuImg.check(image, "bitmap", "--remove", "-f", "qcow2", image.toString(), name);
            if (json.enabled()) {
                json.print(Map.of("image", image.toString(), "removed", name));
            } else if (!logging.quiet) {
                System.out.println(image + ": removed bitmap " + name);
            }
            return ExitCodes.OK;
        }
    }
}
