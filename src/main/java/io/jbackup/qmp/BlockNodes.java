package io.jbackup.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.error.NotFoundException;
import io.jbackup.error.UsageException;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Read-only queries of QEMU's block graph: named nodes with their driver, size and dirty bitmaps
 * ({@code query-named-block-nodes} with {@code flat: true}), and guest devices ({@code query-block}).
 */
public final class BlockNodes {
    private BlockNodes() {
    }

    /**
     * A dirty bitmap as {@code query-named-block-nodes} reports it.
     *
     * @param recording    whether it records writes (false after {@code block-dirty-bitmap-disable})
     * @param persistent   whether QEMU stores it in the qcow2 image when it closes the image
     * @param busy         in use by an export or job, so it cannot be changed
     * @param inconsistent loaded from an image that was not closed cleanly: its content cannot be trusted
     * @param count        bytes marked dirty
     */
    public record DirtyBitmap(String name, boolean recording, boolean persistent, boolean busy, boolean inconsistent,
                              long count, long granularity) {
    }

    /**
     * A named block node.
     *
     * @param driver the format or filter driver ({@code qcow2}, {@code raw}, {@code throttle}, ...)
     * @param size   the virtual size in bytes
     */
    public record Node(String name, String driver, long size, List<DirtyBitmap> bitmaps) {
        public Node {
            bitmaps = List.copyOf(bitmaps);
        }

        public Optional<DirtyBitmap> bitmap(String bitmapName) {
            return bitmaps.stream().filter(b -> b.name().equals(bitmapName)).findFirst();
        }
    }

    /** Every named node (nodes QEMU named itself, {@code #blockNNN}, are left out). */
    public static List<Node> nodes(QmpClient qmp) throws QmpException, QmpConnectionException {
        JsonNode all = qmp.execute("query-named-block-nodes", QmpClient.args("flat", true));
        List<Node> out = new ArrayList<>();
        for (JsonNode n : all) {
            String name = n.path("node-name").asText("");
            if (name.isEmpty() || name.startsWith("#")) {
                continue;
            }
            List<DirtyBitmap> bitmaps = new ArrayList<>();
            for (JsonNode b : n.path("dirty-bitmaps")) {
                if (!b.hasNonNull("name")) {
                    continue; // anonymous bitmaps belong to QEMU's own jobs
                }
                bitmaps.add(new DirtyBitmap(b.get("name").asText(), b.path("recording").asBoolean(true),
                    b.path("persistent").asBoolean(false), b.path("busy").asBoolean(false),
                    b.path("inconsistent").asBoolean(false), b.path("count").asLong(), b.path("granularity").asLong()));
            }
            out.add(new Node(name, n.path("drv").asText(""), n.path("image").path("virtual-size").asLong(-1),
                bitmaps));
        }
        return out;
    }

    /** The named node, if it exists. */
    public static Optional<Node> find(QmpClient qmp, String nodeName) throws QmpException, QmpConnectionException {
        return nodes(qmp).stream().filter(n -> n.name().equals(nodeName)).findFirst();
    }

    /** The named node; fails naming the nodes that do exist. */
    public static Node node(QmpClient qmp, String nodeName) throws QmpException, QmpConnectionException {
        List<Node> all = nodes(qmp);
        for (Node n : all) {
            if (n.name().equals(nodeName)) {
                return n;
            }
        }
        throw new NotFoundException("QEMU at " + qmp.socket() + " has no block node '" + nodeName
            + "'; named nodes: " + describe(all.stream().map(n -> n.name() + " (" + n.driver() + ")").toList())
            + " (give --node NAME, or --device DEV to use a guest device's node)");
    }

    /**
     * The node behind a guest device, from {@code query-block}: {@code DEV} matches the legacy drive id
     * ({@code device}, e.g. {@code drive-virtio-disk0}), the qdev id ({@code virtio-disk0}) or the full qdev
     * path ({@code /machine/peripheral/virtio-disk0/virtio-backend}).
     */
    public static String resolveDevice(QmpClient qmp, String device) throws QmpException, QmpConnectionException {
        JsonNode all = qmp.execute("query-block");
        List<String> known = new ArrayList<>();
        for (JsonNode d : all) {
            String drive = d.path("device").asText("");
            String qdev = d.path("qdev").asText("");
            String qdevId = qdevId(qdev);
            String node = d.path("inserted").path("node-name").asText("");
            known.add((drive.isEmpty() ? qdevId : drive) + (node.isEmpty() ? " (no medium)" : " -> " + node));
            if (device.equals(drive) || device.equals(qdev) || (!qdevId.isEmpty() && device.equals(qdevId))) {
                if (node.isEmpty()) {
                    throw new UsageException("device " + device + " has no medium inserted; nothing to "
                        + "back up");
                }
                return node;
            }
        }
        throw new NotFoundException("QEMU at " + qmp.socket() + " has no block device '" + device
            + "'; devices: " + describe(known) + " (qemu-storage-daemon has no devices: give --node NAME)");
    }

    /** {@code /machine/peripheral/virtio-disk0/virtio-backend} -> {@code virtio-disk0}; a plain id stays. */
    static String qdevId(String qdev) {
        if (!qdev.startsWith("/machine/peripheral/")) {
            return qdev;
        }
        String rest = qdev.substring("/machine/peripheral/".length());
        int slash = rest.indexOf('/');
        return slash < 0 ? rest : rest.substring(0, slash);
    }

    private static String describe(List<String> items) {
        return items.isEmpty() ? "none" : String.join(", ", items);
    }
}
