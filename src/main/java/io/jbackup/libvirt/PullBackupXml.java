package io.jbackup.libvirt;

import org.w3c.dom.Document;
import org.w3c.dom.Element;

import java.nio.file.Path;
import java.util.List;

/**
 * The two documents of a pull-mode backup job ({@code virsh backup-begin DOMAIN BACKUP.xml CHECKPOINT.xml}), built
 * with the DOM API so names and paths are escaped:
 *
 * <pre>
 * &lt;domainbackup mode='pull'&gt;
 *   &lt;server transport='unix' socket='SOCKET'/&gt;
 *   &lt;disks&gt;
 *     &lt;disk name='vda' backup='yes' type='file' backupmode='incremental' incremental='CHECKPOINT'&gt;
 *       &lt;scratch file='DIR/vda.scratch.qcow2'/&gt;&lt;/disk&gt;
 *     &lt;disk name='vdc' backup='yes' type='file' backupmode='full'&gt;...&lt;/disk&gt;
 *     &lt;disk name='hdc' backup='no'/&gt;
 *   &lt;/disks&gt;
 * &lt;/domainbackup&gt;
 *
 * &lt;domaincheckpoint&gt;&lt;name&gt;NAME&lt;/name&gt;&lt;description&gt;...&lt;/description&gt;
 *   &lt;disks&gt;&lt;disk name='vda' checkpoint='bitmap'/&gt;&lt;disk name='hdc' checkpoint='no'/&gt;&lt;/disks&gt;
 * &lt;/domaincheckpoint&gt;
 * </pre>
 *
 * The per-disk {@code backupmode} and {@code incremental} attributes (libvirt 7.6 and newer) let a disk added since
 * the last backup be read in full while the others are incremental. libvirt exports each disk under its target
 * name, with the dirty bitmap of an incremental disk as {@code qemu:dirty-bitmap:backup-TARGET}.
 */
public final class PullBackupXml {
    private PullBackupXml() {
    }

    /** A disk of the job: read in full ({@code incrementalFrom} null) or the changes since a checkpoint. */
    public record Disk(String target, String incrementalFrom) {
    }

    /** The export name libvirt gives the dirty bitmap of an incremental disk. */
    public static String bitmapOf(String target) {
        return "backup-" + target;
    }

    /** The backup document: {@code disks} are backed up, {@code others} not. */
    public static String backup(Path socket, Path scratchDir, List<Disk> disks, List<String> others) {
        Document d = DomainXml.newDocument("domainbackup");
        Element root = d.getDocumentElement();
        root.setAttribute("mode", "pull");
        Element server = d.createElement("server");
        server.setAttribute("transport", "unix");
        server.setAttribute("socket", socket.toString());
        root.appendChild(server);
        Element list = d.createElement("disks");
        root.appendChild(list);
        for (Disk disk : disks) {
            Element e = d.createElement("disk");
            e.setAttribute("name", disk.target());
            e.setAttribute("backup", "yes");
            e.setAttribute("type", "file");
            if (disk.incrementalFrom() == null) {
                e.setAttribute("backupmode", "full");
            } else {
                e.setAttribute("backupmode", "incremental");
                e.setAttribute("incremental", disk.incrementalFrom());
            }
            Element scratch = d.createElement("scratch");
            scratch.setAttribute("file", scratchDir.resolve(disk.target() + ".scratch.qcow2").toString());
            e.appendChild(scratch);
            list.appendChild(e);
        }
        for (String o : others) {
            Element e = d.createElement("disk");
            e.setAttribute("name", o);
            e.setAttribute("backup", "no");
            list.appendChild(e);
        }
        return DomainXml.serialize(d);
    }

    /** The checkpoint document: a bitmap on each of {@code disks}, none on {@code others}. */
    public static String checkpoint(String name, String description, List<String> disks, List<String> others) {
        Document d = DomainXml.newDocument("domaincheckpoint");
        Element root = d.getDocumentElement();
        Element n = d.createElement("name");
        n.setTextContent(name);
        root.appendChild(n);
        Element desc = d.createElement("description");
        desc.setTextContent(description);
        root.appendChild(desc);
        Element list = d.createElement("disks");
        root.appendChild(list);
        for (String disk : disks) {
            Element e = d.createElement("disk");
            e.setAttribute("name", disk);
            e.setAttribute("checkpoint", "bitmap");
            list.appendChild(e);
        }
        for (String o : others) {
            Element e = d.createElement("disk");
            e.setAttribute("name", o);
            e.setAttribute("checkpoint", "no");
            list.appendChild(e);
        }
        return DomainXml.serialize(d);
    }
}
