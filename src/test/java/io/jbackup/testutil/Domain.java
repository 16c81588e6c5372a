package io.jbackup.testutil;

import org.w3c.dom.Element;
import org.w3c.dom.NodeList;
import org.xml.sax.InputSource;

import java.io.IOException;
import java.io.StringReader;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import javax.xml.parsers.DocumentBuilderFactory;

/**
 * A libvirt domain for tests ({@code qemu:///system}): TCG ({@code <domain type='qemu'>}, machine {@code pc} with
 * ACPI, 64 MiB, 1 vCPU, no OS, no graphics) with qcow2 disks {@code vda}, {@code vdb}, ... on virtio-blk
 * ({@code discard='unmap'}), optionally an empty IDE cdrom {@code hdc} and a user-mode interface with a given MAC.
 * Its files go to a directory made usable by QEMU ({@link Libvirt#shareWithQemu}); its name is unique
 * ({@link Libvirt#uniqueName}). The guest never boots anything: "guest writes" go through the QEMU monitor
 * ({@link #write}). {@link #close()} destroys and undefines it (with its checkpoints' metadata) and deletes its files.
 *
 * <pre>{@code
 * try (Domain dom = Libvirt.domain(dir).disks(32 << 20, 16 << 20).cdrom().create()) {
 *     dom.write("vdb", 0x44, 1 << 20, 64 << 10);
 *     dom.snapshot("vdb", dir.resolve("vdb.raw"));
 * }
 * }</pre>
 */
public final class Domain implements AutoCloseable {
    /** A disk of the domain: target ({@code vda}), its qcow2 file and virtual size in bytes. */
    public record Disk(String target, Path file, long size) {
    }

    private final String name;
    private final Path dir;
    private final List<Disk> disks;
    private final String mac;
    private final List<Path> files = new ArrayList<>();

    private Domain(String name, Path dir, List<Disk> disks, String mac) {
        this.name = name;
        this.dir = dir;
        this.disks = new ArrayList<>(disks);
        this.mac = mac;
        for (Disk d : disks) {
            files.add(d.file());
        }
    }

    /** OVMF's firmware and its variables template (Debian package {@code ovmf}). */
    public static final String OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd";
    public static final String OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd";

    /** The NVRAM file of a {@link Builder#uefi()} domain. */
    public Path nvram() {
        return dir.resolve(name + "_VARS.fd");
    }

    /** See {@link Libvirt#domain}. */
    public static Builder builder(Path dir) {
        return new Builder(dir);
    }

    /** Options of a new domain; {@link #create()} defines and starts it, {@link #define()} only defines it. */
    public static final class Builder {
        private final Path dir;
        private String prefix = "jbt";
        private final List<Long> sizes = new ArrayList<>();
        private boolean cdrom;
        private long rawDisk;
        private String mac;
        private boolean uefi;

        private Builder(Path dir) {
            this.dir = dir;
        }

        /** The name's prefix ({@code jbt} by default); a random suffix makes it unique. */
        public Builder namePrefix(String prefix) {
            this.prefix = prefix;
            return this;
        }

        /** Adds qcow2 disks of these virtual sizes (bytes), targets vda, vdb, ... in order. */
        public Builder disks(long... sizes) {
            for (long s : sizes) {
                this.sizes.add(s);
            }
            return this;
        }

        /** Adds a raw image of this size as disk {@code vdz}: no checkpoints, so a backup cannot take it. */
        public Builder rawDisk(long size) {
            this.rawDisk = size;
            return this;
        }

        /** Adds a cdrom with no medium (target {@code hdc}, bus ide): a backup must skip it. */
        public Builder cdrom() {
            this.cdrom = true;
            return this;
        }

        /**
         * UEFI firmware (OVMF, package {@code ovmf}, machine q35): the domain gets an NVRAM file
         * ({@code DIR/NAME_VARS.fd}, {@link Domain#nvram()}), made by libvirt from OVMF's template.
         */
        public Builder uefi() {
            this.uefi = true;
            return this;
        }

        /** Adds {@code <interface type='user'>} with this MAC (e.g. {@code 52:54:00:12:34:56}). */
        public Builder userInterface(String mac) {
            this.mac = mac.toLowerCase(Locale.ROOT);
            return this;
        }

        /** Creates the disks, defines the domain and starts it. */
        public Domain create() {
            Domain d = define();
            try {
                d.start();
            } catch (RuntimeException | Error e) {
                d.close();
                throw e;
            }
            return d;
        }

        /** Creates the disks and defines the domain, shut off. */
        public Domain define() {
            if (sizes.isEmpty()) {
                throw new IllegalStateException("a domain needs at least one disk");
            }
            Libvirt.shareWithQemu(dir);
            String name = Libvirt.uniqueName(prefix);
            List<Disk> disks = new ArrayList<>();
            for (int i = 0; i < sizes.size(); i++) {
                String target = "vd" + (char) ('a' + i);
                disks.add(new Disk(target, dir.resolve(name + "-" + target + ".qcow2"), sizes.get(i)));
            }
            Domain d = new Domain(name, dir, disks, mac);
            try {
                for (Disk disk : disks) {
                    createImage(disk);
                }
                StringBuilder xml = new StringBuilder()
                    .append("<domain type='qemu'>\n")
                    .append("  <name>").append(name).append("</name>\n")
                    .append("  <memory unit='MiB'>64</memory><vcpu>1</vcpu>\n")
                    .append(uefi ? "  <os><type arch='x86_64' machine='q35'>hvm</type>"
                        + "<loader readonly='yes' type='pflash'>" + OVMF_CODE + "</loader>"
                        + "<nvram template='" + OVMF_VARS + "'>" + dir.resolve(name + "_VARS.fd") + "</nvram></os>\n"
                        : "  <os><type arch='x86_64' machine='pc'>hvm</type></os>\n")
                    // Without ACPI, pci.0 has no hotplug: attach-disk fails "Bus 'pci.0' does not support hotplugging".
                    .append("  <features><acpi/></features>\n")
                    .append("  <devices>\n")
                    .append("    <emulator>").append(Libvirt.EMULATOR).append("</emulator>\n");
                for (Disk disk : disks) {
                    xml.append("    ").append(diskXml(disk)).append("\n");
                }
                if (rawDisk > 0) {
                    Path raw = d.addFile(dir.resolve(name + "-vdz.raw"));
                    Proc.run("qemu-img", "create", "-q", "-f", "raw", raw.toString(), Long.toString(rawDisk));
                    Libvirt.shareFileWithQemu(raw);
                    xml.append("    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='")
                        .append(raw).append("'/><target dev='vdz' bus='virtio'/></disk>\n");
                }
                if (cdrom) {
                    xml.append("    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/>"
                        + "<target dev='hdc' bus='ide'/><readonly/></disk>\n");
                }
                if (mac != null) {
                    xml.append("    <interface type='user'><mac address='").append(mac).append("'/></interface>\n");
                }
                xml.append("  </devices>\n</domain>\n");
                Path file = d.addFile(dir.resolve(name + ".xml"));
                Files.writeString(file, xml);
                Libvirt.virsh("define", file.toString());
            } catch (IOException e) {
                d.close();
                throw new UncheckedIOException(e);
            } catch (RuntimeException | Error e) {
                d.close();
                throw e;
            }
            return d;
        }
    }

    private static void createImage(Disk disk) {
        QemuImages.qcow2(disk.file(), Long.toString(disk.size()));
        Libvirt.shareFileWithQemu(disk.file());
    }

    private static String diskXml(Disk disk) {
        return "<disk type='file' device='disk'><driver name='qemu' type='qcow2' discard='unmap'/><source file='"
            + disk.file() + "'/><target dev='" + disk.target() + "' bus='virtio'/></disk>";
    }

    private Path addFile(Path file) {
        files.add(file);
        return file;
    }

    public String name() {
        return name;
    }

    public Path dir() {
        return dir;
    }

    /** The MAC of the user-mode interface, or null without one. */
    public String mac() {
        return mac;
    }

    /** The disks, in the order they were created or attached. */
    public List<Disk> disks() {
        return Collections.unmodifiableList(disks);
    }

    public Disk disk(String target) {
        for (Disk d : disks) {
            if (d.target().equals(target)) {
                return d;
            }
        }
        throw new IllegalArgumentException(name + " has no disk " + target + " (" + disks + ")");
    }

    /** QEMU's log of this domain ({@code /var/log/libvirt/qemu/NAME.log}); monitor qemu-io output goes there. */
    public Path qemuLog() {
        return Libvirt.QEMU_LOG_DIR.resolve(name + ".log");
    }

    // ---- life cycle

    /** {@code virsh start}. */
    public void start() {
        Libvirt.virsh("start", name);
    }

    /** {@code virsh destroy}: pulls the plug (when running or paused). */
    public void shutOff() {
        if (isActive()) {
            Libvirt.virsh("destroy", name);
        }
    }

    /** {@code virsh suspend}: the vCPUs stop; the block layer and the monitor still work. */
    public void suspend() {
        Libvirt.virsh("suspend", name);
    }

    /** {@code virsh resume}. */
    public void resume() {
        Libvirt.virsh("resume", name);
    }

    /** {@code virsh domstate}: "running", "paused", "shut off", ... */
    public String state() {
        return Libvirt.virsh("domstate", name).strip();
    }

    /** Running or paused. */
    public boolean isActive() {
        String s = state();
        return s.equals("running") || s.equals("paused");
    }

    /** {@code virsh checkpoint-list --name}, parents before children. */
    public List<String> checkpoints() {
        List<String> out = new ArrayList<>();
        for (String line : Libvirt.virsh("checkpoint-list", name, "--name", "--topological").split("\n")) {
            if (!line.isBlank()) {
                out.add(line.strip());
            }
        }
        return out;
    }

    /** {@code virsh dumpxml}: the live XML when running (aliases, backing index), else the persistent one. */
    public String liveXml() {
        return Libvirt.virsh("dumpxml", name);
    }

    /** {@code virsh dumpxml --inactive}: the persistent definition. */
    public String inactiveXml() {
        return Libvirt.virsh("dumpxml", "--inactive", name);
    }

    // ---- disks

    /**
     * Creates a qcow2 of {@code size} bytes and attaches it as {@code target} (virtio, {@code discard='unmap'}) live
     * (when the domain runs) and persistently: {@code virsh attach-device --persistent}, the same as
     * {@code virsh attach-disk DOM FILE vdc --driver qemu --subdriver qcow2 --targetbus virtio --persistent}, which
     * also works here (hotplug needs the ACPI this domain has).
     */
    public Disk attachDisk(String target, long size) {
        Disk disk = new Disk(target, dir.resolve(name + "-" + target + ".qcow2"), size);
        addFile(disk.file());
        createImage(disk);
        Path xml = addFile(dir.resolve(name + "-" + target + ".xml"));
        try {
            Files.writeString(xml, diskXml(disk) + "\n");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        Libvirt.virsh("attach-device", name, xml.toString(), "--persistent");
        disks.add(disk);
        return disk;
    }

    /**
     * The qdev id QEMU gave the disk ({@code virtio-disk0}, ...), from the {@code <alias>} of the live XML: the
     * N of virtio-diskN counts the domain's disks, not the letters of the targets.
     */
    public String deviceId(String target) {
        try {
            var factory = DocumentBuilderFactory.newInstance();
            factory.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
            var doc = factory.newDocumentBuilder().parse(new InputSource(new StringReader(liveXml())));
            NodeList list = doc.getElementsByTagName("disk");
            for (int i = 0; i < list.getLength(); i++) {
                Element disk = (Element) list.item(i);
                Element t = first(disk, "target");
                if (t != null && target.equals(t.getAttribute("dev"))) {
                    Element alias = first(disk, "alias");
                    if (alias == null) {
                        throw new IllegalStateException(name + " is not running: disk " + target + " has no alias");
                    }
                    return alias.getAttribute("name");
                }
            }
            throw new IllegalArgumentException(name + " has no disk " + target + " in its live XML");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (javax.xml.parsers.ParserConfigurationException | org.xml.sax.SAXException e) {
            throw new IllegalStateException(e);
        }
    }

    private static Element first(Element parent, String tag) {
        NodeList l = parent.getElementsByTagName(tag);
        return l.getLength() == 0 ? null : (Element) l.item(0);
    }

    /**
     * A guest write: bytes {@code pattern} over {@code [offset, offset+length)} of disk {@code target}, through the
     * device's block backend ({@code qemu-io -d /machine/peripheral/virtio-diskN/virtio-backend "write -P ..."} on
     * the HMP monitor), then a flush so that the qcow2 file on disk holds it.
     */
    public void write(String target, int pattern, long offset, long length) {
        qemuIo(target, String.format("write -P 0x%02x %d %d", pattern & 0xff, offset, length), "wrote", offset);
        flush(target);
    }

    /** A guest write-zeroes ({@code qemu-io "write -z OFF LEN"}), then a flush. */
    public void writeZeroes(String target, long offset, long length) {
        qemuIo(target, "write -z " + offset + " " + length, "wrote", offset);
        flush(target);
    }

    /** A guest discard ({@code qemu-io "discard OFF LEN"}; passed down: the disks have {@code discard='unmap'}), then a flush. */
    public void discard(String target, long offset, long length) {
        qemuIo(target, "discard " + offset + " " + length, "discard", offset);
        flush(target);
    }

    /**
     * Flushes the disk's qcow2 metadata caches to the file. Needed before reading the file from outside
     * ({@code qemu-img -U}): without it a guest write can be in QEMU's L2 cache only and the file does not show it.
     */
    public void flush(String target) {
        qemuIo(target, "flush", null, 0);
    }

    /**
     * Runs one qemu-io command on the disk's block backend through the HMP monitor. The monitor's answer is empty
     * on success and names errors such as an unknown device; qemu-io's own output ("wrote 65536/65536 bytes at
     * offset 1048576", "write failed: Input/output error") goes to QEMU's stdout, i.e. {@link #qemuLog()}: with
     * {@code expect} (a verb such as "wrote"), waits for that line there and fails on a "failed" line.
     */
    public void qemuIo(String target, String command, String expect, long offset) {
        String device = "/machine/peripheral/" + deviceId(target) + "/virtio-backend";
        Path log = qemuLog();
        long mark = logSize(log);
        String hmp = "qemu-io -d " + device + " \"" + command + "\"";
        String reply = Libvirt.virsh("qemu-monitor-command", name, "--hmp", hmp);
        if (!reply.isBlank()) {
            throw new AssertionError("qemu-io on " + name + " " + target + " failed: " + hmp + ": " + reply.strip());
        }
        if (expect == null || mark < 0) {
            return;
        }
        String success = expect + " ";
        String successTail = "at offset " + offset;
        long deadline = System.nanoTime() + 10_000_000_000L;
        String seen = "";
        while (System.nanoTime() < deadline) {
            seen = readFrom(log, mark);
            for (String line : seen.split("\n")) {
                if (line.contains("failed") || line.contains("not found")) {
                    throw new AssertionError("qemu-io on " + name + " " + target + ": " + hmp + ": " + line.strip());
                }
                if (line.startsWith(success) && line.strip().endsWith(successTail)) {
                    return;
                }
            }
            Proc.sleep(20);
        }
        throw new AssertionError("qemu-io on " + name + " " + target + ": no \"" + expect + " ... " + successTail
            + "\" in " + log + " after " + hmp + "; new log lines: " + seen);
    }

    private static long logSize(Path log) {
        try {
            return Files.isReadable(log) ? Files.size(log) : -1;
        } catch (IOException e) {
            return -1;
        }
    }

    private static String readFrom(Path log, long mark) {
        try {
            byte[] all = Files.readAllBytes(log);
            return all.length <= mark ? "" : Proc.utf8(java.util.Arrays.copyOfRange(all, (int) mark, all.length));
        } catch (IOException e) {
            return "";
        }
    }

    /**
     * The disk's current content as a raw file ({@code qemu-img convert -U -f qcow2 -O raw}), with the domain paused
     * around it when it runs (a paused domain stays paused), after a flush.
     */
    public Path snapshot(String target, Path out) {
        boolean running = state().equals("running");
        if (running) {
            suspend();
        }
        try {
            return snapshotAsIs(target, out);
        } finally {
            if (running) {
                resume();
            }
        }
    }

    /** Like {@link #snapshot} but without pausing: the caller {@link #suspend}s and {@link #resume}s. */
    public Path snapshotAsIs(String target, Path out) {
        if (isActive()) {
            flush(target);
        }
        Proc.run("qemu-img", "convert", "-U", "-f", "qcow2", "-O", "raw", disk(target).file().toString(),
            out.toString());
        return out;
    }

    // ---- clean-up

    /**
     * Destroys the domain if it runs, deletes its checkpoints' metadata (children first), undefines it and deletes its
     * files and QEMU log. Never throws: problems are printed to stderr, so they do not hide a test's failure.
     */
    @Override
    public void close() {
        step("destroy", () -> {
            if (Libvirt.isDefined(name) && isActive()) {
                Libvirt.virsh("destroy", name);
            }
        });
        step("checkpoint-delete", () -> {
            if (Libvirt.isDefined(name)) {
                List<String> cps = checkpoints();
                Collections.reverse(cps);
                for (String cp : cps) {
                    Libvirt.virsh("checkpoint-delete", name, cp, "--metadata");
                }
            }
        });
        step("undefine", () -> {
            if (Libvirt.isDefined(name)) {
                List<String> args = new ArrayList<>(List.of("undefine", name, "--checkpoints-metadata"));
                if (inactiveXml().contains("<nvram")) {
                    args.add("--nvram");
                }
                Proc.Result r = Libvirt.virshResult(args.toArray(String[]::new));
                if (r.exitCode() != 0) {
                    Libvirt.virsh("undefine", name);
                }
            }
        });
        for (Path f : files) {
            step("delete " + f, () -> Files.deleteIfExists(f));
        }
        step("delete " + qemuLog(), () -> Files.deleteIfExists(qemuLog()));
    }

    private interface Step {
        void run() throws Exception;
    }

    private void step(String what, Step step) {
        try {
            step.run();
        } catch (Exception | AssertionError e) {
            System.err.println("Domain.close(" + name + "): " + what + " failed: " + e);
        }
    }

    @Override
    public String toString() {
        return "Domain[" + name + ", " + dir + ", " + disks + "]";
    }
}
