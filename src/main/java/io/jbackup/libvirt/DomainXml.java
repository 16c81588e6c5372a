package io.jbackup.libvirt;

import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;
import org.w3c.dom.NodeList;
import org.xml.sax.InputSource;
import org.xml.sax.SAXException;

import javax.xml.XMLConstants;
import javax.xml.parsers.DocumentBuilder;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.parsers.ParserConfigurationException;
import javax.xml.transform.OutputKeys;
import javax.xml.transform.Transformer;
import javax.xml.transform.TransformerException;
import javax.xml.transform.TransformerFactory;
import javax.xml.transform.dom.DOMSource;
import javax.xml.transform.stream.StreamResult;
import java.io.StringReader;
import java.io.StringWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A libvirt domain definition (<a href="https://libvirt.org/formatdomain.html">formatdomain</a>), parsed with the
 * JDK's DOM parser (external entities and DTDs refused), and the documents jbackup writes for libvirt: checkpoint
 * ({@code formatcheckpoint}) and pull-mode backup ({@code formatbackup}) definitions, and a domain rewritten for a
 * restore.
 */
public final class DomainXml {
    private final Document doc;

    private DomainXml(Document doc) {
        this.doc = doc;
    }

    /**
     * One {@code <disk>} of the domain.
     *
     * @param target     the guest target ({@code vda}, {@code sdb}): the disk's name in jbackup
     * @param device     disk, cdrom, floppy or lun
     * @param type       file, block, network, volume, nvme, ...
     * @param format     the driver type (qcow2, raw), or null
     * @param source     the file or device path, or null (no medium, network disk)
     * @param readOnly   whether the disk is {@code <readonly/>}
     */
    public record Disk(String target, String device, String type, String format, String source, boolean readOnly) {
        /** Why jbackup cannot back this disk up with a checkpoint, or empty when it can. */
        public Optional<String> unsupported() {
            if (!"disk".equals(device)) {
                return Optional.of("a " + device + " drive, not a disk");
            }
            if (source == null) {
                return Optional.of("no source (" + type + " disk)");
            }
            if (!"file".equals(type) && !"block".equals(type)) {
                return Optional.of("a " + type + " disk: only file and block disks carry the checkpoint bitmaps");
            }
            if (!"qcow2".equals(format)) {
                return Optional.of("a " + (format == null ? "raw" : format) + " image: checkpoints need qcow2 "
                    + "(persistent dirty bitmaps); convert it with qemu-img convert -O qcow2 while the domain is "
                    + "shut off");
            }
            return Optional.empty();
        }
    }

    /** Parses a domain's XML. */
    public static DomainXml parse(String xml) throws LibvirtException {
        Document d = document(xml);
        if (!"domain".equals(d.getDocumentElement().getTagName())) {
            throw new LibvirtException("not a libvirt domain definition: the root element is <"
                + d.getDocumentElement().getTagName() + ">");
        }
        return new DomainXml(d);
    }

    /** The socket of a pull-mode backup document ({@code <domainbackup><server socket=...>}), or null. */
    static String backupSocket(String backupXml) throws LibvirtException {
        Element server = child(document(backupXml).getDocumentElement(), "server");
        return server == null || !server.hasAttribute("socket") ? null : server.getAttribute("socket");
    }

    /**
     * The disks of a checkpoint's XML ({@code virsh checkpoint-dumpxml --size}) whose bitmap libvirt could size: a
     * {@code <disk checkpoint='bitmap'>} without a {@code size} attribute has a bitmap that is missing from the image
     * or inconsistent (QEMU was killed, the host crashed, or it was removed by hand), so no incremental can be read
     * from it.
     */
    static java.util.Set<String> checkpointDisksWithSize(String checkpointXml) throws LibvirtException {
        java.util.Set<String> sized = new java.util.LinkedHashSet<>();
        Element disks = child(document(checkpointXml).getDocumentElement(), "disks");
        if (disks == null) {
            return sized;
        }
        for (org.w3c.dom.Node n = disks.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (n instanceof Element e && e.getTagName().equals("disk") && e.hasAttribute("size")
                && "bitmap".equals(attr(e, "checkpoint", "bitmap"))) {
                sized.add(e.getAttribute("name"));
            }
        }
        return sized;
    }

    /** Parses an XML document with external entities and DTDs refused. */
    static Document document(String xml) throws LibvirtException {
        try {
            DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
            f.setFeature(XMLConstants.FEATURE_SECURE_PROCESSING, true);
            f.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
            f.setExpandEntityReferences(false);
            f.setNamespaceAware(false);
            DocumentBuilder b = f.newDocumentBuilder();
            b.setErrorHandler(null);
            return b.parse(new InputSource(new StringReader(xml)));
        } catch (ParserConfigurationException | SAXException | java.io.IOException e) {
            throw new LibvirtException("cannot parse libvirt's XML: " + e.getMessage(), e);
        }
    }

    /** The domain's name. */
    public String name() {
        return text(doc.getDocumentElement(), "name");
    }

    /** The domain's UUID, or null. */
    public String uuid() {
        return text(doc.getDocumentElement(), "uuid");
    }

    /** The NVRAM (UEFI variables) file, or null. */
    public String nvram() {
        Element os = child(doc.getDocumentElement(), "os");
        Element nv = os == null ? null : child(os, "nvram");
        String t = nv == null ? null : nv.getTextContent().strip();
        return t == null || t.isEmpty() ? null : t;
    }

    /** The disks, in document order. */
    public List<Disk> disks() {
        List<Disk> out = new ArrayList<>();
        for (Element d : diskElements()) {
            Element target = child(d, "target");
            Element driver = child(d, "driver");
            Element source = child(d, "source");
            String path = null;
            if (source != null) {
                for (String a : List.of("file", "dev", "volume", "name")) {
                    if (source.hasAttribute(a)) {
                        path = source.getAttribute(a);
                        break;
                    }
                }
            }
            out.add(new Disk(target == null ? null : target.getAttribute("dev"), attr(d, "device", "disk"),
                attr(d, "type", "file"), driver == null || !driver.hasAttribute("type") ? null
                : driver.getAttribute("type"), path, child(d, "readonly") != null));
        }
        return out;
    }

    /**
     * This definition rewritten for a restore: each disk in {@code disks} (by target) points at its restored file
     * with its format; disks not in the map are removed (a cdrom keeps no medium). With {@code newName}, the domain
     * gets that name, no UUID (libvirt makes a new one) and no MAC addresses (libvirt makes new ones), so it can be
     * defined beside the original. With {@code nvram}, the {@code <nvram>} element points at that file.
     */
    public String restored(Map<String, RestoredDisk> disks, String newName, String nvram) {
        Document d = (Document) doc.cloneNode(true);
        DomainXml copy = new DomainXml(d);
        for (Element disk : copy.diskElements()) {
            Element target = child(disk, "target");
            String dev = target == null ? null : target.getAttribute("dev");
            RestoredDisk r = dev == null ? null : disks.get(dev);
            if (r == null) {
                if ("disk".equals(attr(disk, "device", "disk"))) {
                    disk.getParentNode().removeChild(disk);
                } else { // a cdrom or floppy: keep the drive, drop its medium
                    Element s = child(disk, "source");
                    if (s != null) {
                        disk.removeChild(s);
                    }
                }
                continue;
            }
            Element source = child(disk, "source");
            Element fresh = d.createElement("source");
            if (r.socket() == null) {
                disk.setAttribute("type", "file");
                fresh.setAttribute("file", r.path());
            } else {
                disk.setAttribute("type", "network");
                fresh.setAttribute("protocol", "nbd");
                fresh.setAttribute("name", r.path());
                Element host = d.createElement("host");
                host.setAttribute("transport", "unix");
                host.setAttribute("socket", r.socket());
                fresh.appendChild(host);
            }
            if (source != null) {
                disk.replaceChild(fresh, source);
            } else {
                disk.insertBefore(fresh, target);
            }
            Element driver = child(disk, "driver");
            if (driver == null) {
                driver = d.createElement("driver");
                driver.setAttribute("name", "qemu");
                disk.insertBefore(driver, disk.getFirstChild());
            }
            driver.setAttribute("type", r.format());
            Element backing = child(disk, "backingStore");
            if (backing != null) {
                disk.removeChild(backing);
            }
        }
        if (nvram != null) {
            Element os = child(d.getDocumentElement(), "os");
            Element nv = os == null ? null : child(os, "nvram");
            if (nv != null) {
                nv.setTextContent(nvram);
            }
        }
        if (newName != null) {
            Element root = d.getDocumentElement();
            child(root, "name").setTextContent(newName);
            Element uuid = child(root, "uuid");
            if (uuid != null) {
                root.removeChild(uuid);
            }
            NodeList macs = d.getElementsByTagName("mac");
            for (int i = macs.getLength() - 1; i >= 0; i--) {
                Node m = macs.item(i);
                if (m.getParentNode() instanceof Element p && p.getTagName().equals("interface")) {
                    p.removeChild(m);
                }
            }
        }
        return serialize(d);
    }

    /**
     * A restored disk: its file and format (qcow2 or raw), or, for instant recovery, an NBD export on a unix socket
     * ({@code socket} set, {@code path} the export name, format raw).
     */
    public record RestoredDisk(String path, String format, String socket) {
        public RestoredDisk(String path, String format) {
            this(path, format, null);
        }

        /** The export {@code export} of the NBD server on {@code socket}. */
        public static RestoredDisk nbd(String socket, String export) {
            return new RestoredDisk(export, "raw", socket);
        }
    }

    /** The XML text of this definition. */
    public String text() {
        return serialize(doc);
    }

    private List<Element> diskElements() {
        List<Element> out = new ArrayList<>();
        Element devices = child(doc.getDocumentElement(), "devices");
        if (devices == null) {
            return out;
        }
        for (Node n = devices.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (n instanceof Element e && e.getTagName().equals("disk")) {
                out.add(e);
            }
        }
        return out;
    }

    static Element child(Element parent, String tag) {
        for (Node n = parent.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (n instanceof Element e && e.getTagName().equals(tag)) {
                return e;
            }
        }
        return null;
    }

    private static String text(Element parent, String tag) {
        Element e = child(parent, tag);
        return e == null ? null : e.getTextContent().strip();
    }

    private static String attr(Element e, String name, String dflt) {
        return e.hasAttribute(name) ? e.getAttribute(name) : dflt;
    }

    static String serialize(Document d) {
        try {
            TransformerFactory tf = TransformerFactory.newInstance();
            tf.setAttribute(XMLConstants.ACCESS_EXTERNAL_DTD, "");
            tf.setAttribute(XMLConstants.ACCESS_EXTERNAL_STYLESHEET, "");
            Transformer t = tf.newTransformer();
            t.setOutputProperty(OutputKeys.OMIT_XML_DECLARATION, "yes");
            t.setOutputProperty(OutputKeys.ENCODING, "UTF-8");
            StringWriter w = new StringWriter();
            t.transform(new DOMSource(d), new StreamResult(w));
            return w.toString();
        } catch (TransformerException e) {
            throw new IllegalStateException("serializing an XML document failed", e);
        }
    }

    static Document newDocument(String root) {
        try {
            DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
            f.setFeature(XMLConstants.FEATURE_SECURE_PROCESSING, true);
            Document d = f.newDocumentBuilder().newDocument();
            d.appendChild(d.createElement(root));
            return d;
        } catch (ParserConfigurationException e) {
            throw new IllegalStateException(e);
        }
    }
}
