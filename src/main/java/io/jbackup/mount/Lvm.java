package io.jbackup.mount;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.jbackup.engine.ExternalToolException;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The lvm2 command lines of read-only activation, and what their JSON reports say. jbackup parses no LVM metadata:
 * lvm2 reads it, restricted to the loop devices of one partition.
 *
 * <p>Every command sees only the given devices ({@code --devices /dev/loopN} from lvm2 2.03.12; before, a
 * {@code devices { filter }} that accepts them and rejects everything else), needs no udev ({@code --noudevsync},
 * {@code udev_sync=0 udev_rules=0}: libdevmapper makes the device nodes itself; {@code
 * obtain_device_list_from_udev=0}), starts no monitoring, writes no metadata backup, and activates the volume group
 * read-only ({@code read_only_volume_list=["VG"]}; the loop devices are read-only too). No command here writes LVM
 * metadata.
 */
public final class Lvm {
    /** The names lvm2 allows for volume groups and logical volumes; anything else is refused before use. */
    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}");
    private static final Pattern DEVICE = Pattern.compile("/dev/[A-Za-z0-9_/-]+");
    private static final Pattern VERSION = Pattern.compile("LVM version:\\s*(\\d+)\\.(\\d+)\\.(\\d+)");

    private Lvm() {
    }

    /** A logical volume as {@code lvs} reports it: its device-mapper path and attributes ({@code -wi-a-----}). */
    public record Volume(String vg, String lv, String dmPath, String attr, long size) {
        /** {@code VG-LV}: the directory it is mounted on, under the partition's. */
        public String dirName() {
            return vg + "-" + lv;
        }

        /** The device-mapper name, {@code /dev/mapper/NAME}. */
        public String dmName() {
            return dmPath.substring(dmPath.lastIndexOf('/') + 1);
        }

        /** A thin pool holds thin volumes, no filesystem: it is not mounted itself. */
        public boolean pool() {
            return !attr.isEmpty() && attr.charAt(0) == 't';
        }
    }

    /** A volume group as {@code vgs} reports it. */
    public record Group(String name, String uuid, int pvCount, int missingPvs) {
    }

    /** Whether {@code name} is a name lvm2 accepts for a volume group or logical volume. */
    public static boolean validName(String name) {
        return name != null && NAME.matcher(name).matches() && !name.equals(".") && !name.equals("..");
    }

    /** Whether this lvm2 has {@code --devices} (2.03.12 and later), from {@code lvm version}. */
    public static boolean hasDevicesOption(String lvmVersionOutput) {
        Matcher m = VERSION.matcher(lvmVersionOutput);
        if (!m.find()) {
            return false;
        }
        int[] v = {Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2)), Integer.parseInt(m.group(3))};
        return v[0] > 2 || v[0] == 2 && (v[1] > 3 || v[1] == 3 && v[2] >= 12);
    }

    /**
     * The {@code --config} text: no udev, no monitoring, no metadata backup, no hints; read-only activation of
     * {@code vg} (when not null); without {@code --devices}, a filter that accepts only {@code devices}.
     */
    static String config(String vg, List<String> devices, boolean devicesOption) {
        StringBuilder b = new StringBuilder("activation { udev_sync=0 udev_rules=0 monitoring=0");
        if (vg != null) {
            b.append(" read_only_volume_list=[\"").append(vg).append("\"]");
        }
        b.append(" } devices { obtain_device_list_from_udev=0 hints=\"none\"");
        if (!devicesOption) {
            StringBuilder f = new StringBuilder("[");
            for (String d : devices) {
                f.append("\"a|^").append(d).append("$|\", ");
            }
            f.append("\"r|.*|\"]");
            b.append(" use_devicesfile=0 filter=").append(f).append(" global_filter=").append(f);
        }
        return b.append(" } backup { backup=0 archive=0 }").toString();
    }

    /** {@code --devices D1,D2} or nothing (the filter in {@link #config} restricts instead). */
    private static List<String> restrict(List<String> devices, boolean devicesOption) {
        for (String d : devices) {
            if (!DEVICE.matcher(d).matches()) {
                throw new IllegalArgumentException("not a device path: " + d);
            }
        }
        return devicesOption ? List.of("--devices", String.join(",", devices)) : List.of();
    }

    private static void checkName(String vg) {
        if (!validName(vg)) {
            throw new IllegalArgumentException("not a volume group name: " + vg);
        }
    }

    /** Activates {@code vg} read-only, seeing only {@code devices}. */
    public static List<String> activate(String vg, List<String> devices, boolean devicesOption) {
        checkName(vg);
        List<String> cmd = new ArrayList<>(List.of("vgchange", "-ay", "--noudevsync", "--ignoremonitoring",
            "--poll", "n"));
        cmd.addAll(restrict(devices, devicesOption));
        cmd.addAll(List.of("--config", config(vg, devices, devicesOption), vg));
        return cmd;
    }

    /** Deactivates {@code vg}, seeing only {@code devices}. */
    public static List<String> deactivate(String vg, List<String> devices, boolean devicesOption) {
        checkName(vg);
        List<String> cmd = new ArrayList<>(List.of("vgchange", "-an", "--noudevsync", "--ignoremonitoring"));
        cmd.addAll(restrict(devices, devicesOption));
        cmd.addAll(List.of("--config", config(vg, devices, devicesOption), vg));
        return cmd;
    }

    /** The volume groups on {@code devices} (read without locks or device-mapper: {@code --readonly}). */
    public static List<String> groups(List<String> devices, boolean devicesOption) {
        List<String> cmd = new ArrayList<>(List.of("vgs", "--readonly"));
        cmd.addAll(restrict(devices, devicesOption));
        cmd.addAll(List.of("--config", config(null, devices, devicesOption), "--reportformat", "json", "-o",
            "vg_name,vg_uuid,pv_count,vg_missing_pv_count"));
        return cmd;
    }

    /** The logical volumes on {@code devices} (read without locks or device-mapper). */
    public static List<String> volumes(List<String> devices, boolean devicesOption) {
        List<String> cmd = new ArrayList<>(List.of("lvs", "--readonly"));
        cmd.addAll(restrict(devices, devicesOption));
        cmd.addAll(List.of("--config", config(null, devices, devicesOption), "--reportformat", "json", "--units",
            "b", "--nosuffix", "-o", "vg_name,lv_name,lv_dm_path,lv_attr,lv_size"));
        return cmd;
    }

    /** Every physical volume the host's own lvm2 configuration sees, with its volume group. */
    public static List<String> hostPhysicalVolumes() {
        return List.of("pvs", "--readonly", "--reportformat", "json", "-o", "pv_name,vg_name");
    }

    /** The volume groups of a {@link #groups} report. */
    static List<Group> parseGroups(String json) throws ExternalToolException {
        List<Group> out = new ArrayList<>();
        for (JsonNode g : report(json, "vg")) {
            out.add(new Group(g.path("vg_name").asText(), g.path("vg_uuid").asText(), g.path("pv_count").asInt(),
                g.path("vg_missing_pv_count").asInt()));
        }
        return out;
    }

    /** The logical volumes of a {@link #volumes} report. */
    static List<Volume> parseVolumes(String json) throws ExternalToolException {
        List<Volume> out = new ArrayList<>();
        for (JsonNode v : report(json, "lv")) {
            out.add(new Volume(v.path("vg_name").asText(), v.path("lv_name").asText(),
                v.path("lv_dm_path").asText(), v.path("lv_attr").asText(), v.path("lv_size").asLong()));
        }
        return out;
    }

    /** The {@code pv_name} of each physical volume in a {@link #hostPhysicalVolumes} report that is in {@code vg}. */
    static List<String> physicalVolumesOf(String json, String vg) throws ExternalToolException {
        List<String> out = new ArrayList<>();
        for (JsonNode p : report(json, "pv")) {
            if (p.path("vg_name").asText().equals(vg)) {
                out.add(p.path("pv_name").asText());
            }
        }
        return out;
    }

    private static List<JsonNode> report(String json, String kind) throws ExternalToolException {
        List<JsonNode> out = new ArrayList<>();
        try {
            for (JsonNode r : new ObjectMapper().readTree(json).path("report")) {
                r.path(kind).forEach(out::add);
            }
        } catch (IOException e) {
            throw new ExternalToolException("lvm2 printed no JSON report: " + e.getMessage());
        }
        return out;
    }
}
