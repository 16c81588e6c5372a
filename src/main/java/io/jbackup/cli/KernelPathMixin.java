package io.jbackup.cli;

import io.jbackup.mount.KernelPath;
import picocli.CommandLine.Option;

/** {@code --via fuse|nbd|auto}: how {@code mount} and {@code files} present a backup to the kernel. */
public final class KernelPathMixin {
    @Option(names = "--via", paramLabel = "fuse|nbd|auto", defaultValue = "auto",
        description = "How the backup reaches the kernel: fuse (an nbdfuse file), nbd (the kernel's nbd device, "
            + "connected by nbd-client or qemu-nbd) or auto: fuse where /dev/fuse and nbdfuse are there, else nbd "
            + "(default: ${DEFAULT-VALUE}; -v says which was used).")
    KernelPath.Via via;
}
