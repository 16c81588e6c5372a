package io.jbackup.cli;

import io.jbackup.engine.ExternalToolException;
import io.jbackup.error.UsageException;
import io.jbackup.libvirt.DomainBackup;
import io.jbackup.libvirt.Virsh;
import picocli.CommandLine.Option;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;

/** The libvirt source of {@code full}, {@code incremental} and {@code auto}: a domain by its name. */
public final class DomainOptions {
    @Option(names = "--domain", paramLabel = "NAME",
        description = "libvirt domain to back up, running (pull-mode backup with a checkpoint per backup) or shut "
            + "off (its qcow2 images through qemu-nbd). Its disks are named by target (vda, sdb) under a VM named "
            + "after the domain (--vm overrides).")
    String domain;

    @Option(names = "--connect", paramLabel = "URI",
        description = "libvirt connection URI (default: LIBVIRT_DEFAULT_URI, else qemu:///system).")
    String connect;

    @Option(names = "--exclude-disk", paramLabel = "TARGET", description = "Leave this disk of the domain out "
        + "(repeatable).")
    List<String> exclude = new ArrayList<>();

    @Option(names = "--quiesce", negatable = true,
        description = "Freeze the guest's filesystems for the checkpoint through the QEMU guest agent. Default: "
            + "when the agent answers; --quiesce fails without one, --no-quiesce never freezes.")
    Boolean quiesce;

    @Option(names = "--virsh-timeout", paramLabel = "SECONDS", defaultValue = "120",
        description = "Limit of each libvirt command (default: ${DEFAULT-VALUE}).")
    long virshTimeout;

    boolean enabled() {
        return domain != null;
    }

    void checkUnused() {
        if (connect != null || !exclude.isEmpty() || quiesce != null) {
            throw new UsageException("--connect, --exclude-disk and --quiesce need --domain NAME");
        }
    }

    Virsh virsh() throws ExternalToolException {
        if (virshTimeout < 1 || virshTimeout > 3600) {
            throw new UsageException("--virsh-timeout " + virshTimeout + " (expected: 1 .. 3600 seconds)");
        }
        return new Virsh(connect, Duration.ofSeconds(virshTimeout));
    }

    DomainBackup.Options options(String vm, java.nio.file.Path scratchDir) {
        DomainBackup.Quiesce q = quiesce == null ? DomainBackup.Quiesce.AUTO
            : quiesce ? DomainBackup.Quiesce.ON : DomainBackup.Quiesce.OFF;
        return new DomainBackup.Options(domain, vm, new HashSet<>(exclude), q, scratchDir);
    }
}
