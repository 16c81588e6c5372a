package io.jbackup.libvirt;

import io.jbackup.error.NotFoundException;
import io.jbackup.error.UsageException;
import io.jbackup.model.AttachmentInfo;
import io.jbackup.model.BackupInfo;
import io.jbackup.store.Repository;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * The domain part of {@code jbackup restore --domain}: once the disks of a backup set are restored, writes the
 * domain's definition stored with the backup ({@value #XML}), rewritten to point at the restored files, and its
 * NVRAM file ({@value #NVRAM}) when it had one; optionally defines it in libvirt under a new name (new UUID, new MAC
 * addresses) and starts it.
 */
public final class DomainRestore {
    /** Attachment name of the domain's (inactive) XML definition. */
    public static final String XML = "domain.xml";
    /** Attachment name of the domain's NVRAM (UEFI variables) file. */
    public static final String NVRAM = "nvram";

    private DomainRestore() {
    }

    /** What was written. */
    public record Result(Path xml, Path nvram, String definedAs, boolean started) {
    }

    /**
     * @param set     the backups of the set, one per disk
     * @param files   each restored disk's file (by disk name) and its format
     * @param dir     the restore directory
     * @param newName the name to define the domain under (null: write the XML only)
     * @param virsh   libvirt, when defining
     * @param start   start the defined domain
     */
    public static Result finish(Repository repo, List<BackupInfo> set, Map<String, DomainXml.RestoredDisk> files,
                                Path dir, String newName, Virsh virsh, boolean start, Consumer<String> notes)
        throws IOException {
        byte[] xml = null;
        byte[] nvram = null;
        for (BackupInfo b : set) {
            List<AttachmentInfo> a = repo.attachments(b.id());
            if (xml == null && a.stream().anyMatch(x -> x.name().equals(XML))) {
                xml = repo.readAttachment(b.id(), XML);
                if (a.stream().anyMatch(x -> x.name().equals(NVRAM))) {
                    nvram = repo.readAttachment(b.id(), NVRAM);
                }
            }
        }
        if (xml == null) {
            throw new NotFoundException("backup set " + set.get(0).labels().getOrDefault("set", set.get(0).id())
                + " holds no domain definition (it was not taken with --domain); restore its disks with --vm");
        }
        DomainXml domain = DomainXml.parse(new String(xml, java.nio.charset.StandardCharsets.UTF_8));
        for (DomainXml.Disk d : domain.disks()) {
            if ("disk".equals(d.device()) && d.target() != null && !files.containsKey(d.target())) {
                notes.accept("disk " + d.target() + " of domain " + domain.name() + " has no backup in this set "
                    + "(left out or skipped): it is not in the restored definition");
            }
        }
        String name = newName != null ? newName : domain.name();
        Path nvramFile = null;
        if (nvram != null) {
            nvramFile = dir.resolve(name + "_VARS.fd");
            Files.write(nvramFile, nvram);
        }
        String text = domain.restored(files, newName, nvramFile == null ? null : nvramFile.toString());
        Path xmlFile = dir.resolve(name + ".xml");
        Files.writeString(xmlFile, text);
        if (newName == null) {
            if (start) {
                throw new UsageException("--start needs --define NEWNAME");
            }
            return new Result(xmlFile, nvramFile, null, false);
        }
        virsh.define(text, dir);
        if (start) {
            try {
                virsh.start(newName);
            } catch (LibvirtException e) {
                if (e.getClass() != LibvirtException.class) {
                    throw e;
                }
                // the disks are restored and the domain defined: say so, or a second run is refused (name taken)
                throw new LibvirtException(e.getMessage() + "; the disks are restored in " + dir + " and domain "
                    + newName + " is defined" + LiveDomainBackup.closedToOthers(dir).map(c -> ", but " + c
                    + " is closed to other users, so QEMU (which runs as its own user, libvirt-qemu on Debian) may "
                    + "not reach the disks: move them where it can (and 'virsh edit " + newName + "')").orElse("")
                    + "; start it with 'virsh start " + newName + "' once that is fixed", e);
            }
        }
        return new Result(xmlFile, nvramFile, newName, start);
    }
}
