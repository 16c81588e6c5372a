package io.jbackup.mount;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Read-only loop devices through {@code losetup} (util-linux): one per partition, with an offset and a size limit
 * ({@code losetup -r -o OFFSET --sizelimit SIZE}). {@code losetup -P} is not used: without udev it creates no
 * partition devices.
 */
public final class LoopDevices {
    private LoopDevices() {
    }

    /** Attaches {@code size} bytes of {@code file} from {@code offset} read-only; returns the device, /dev/loopN. */
    public static String attach(Path file, long offset, long size) throws IOException {
        return Tool.run(List.of("losetup", "-r", "-f", "--show", "-o", Long.toString(offset), "--sizelimit",
            Long.toString(size), file.toString())).strip();
    }

    /** Detaches {@code device}; true if it is gone (or was never there). */
    public static boolean detach(String device) throws IOException {
        Tool.Result r = Tool.exec(List.of("losetup", "-d", device));
        return r.ok() || !r.said().contains("busy");
    }

    /**
     * The backing file of {@code device} as the kernel names it ({@code /sys/block/loopN/loop/backing_file}), or
     * null when the device is not attached. A file on a FUSE file system that was unmounted while the device held it
     * is named from the root of that file system ({@code /disk}).
     */
    public static String backingFile(String device) {
        Path f = Path.of("/sys/block", Path.of(device).getFileName().toString(), "loop", "backing_file");
        try {
            return java.nio.file.Files.readString(f).strip();
        } catch (IOException e) {
            return null;
        }
    }

    /**
     * The loop devices whose backing file lies under {@code dir} (also those whose backing file is gone) or is one
     * of {@code devices} (the mount's nbd devices).
     */
    public static List<String> backedBy(Path dir, List<String> devices) throws IOException {
        Tool.Result r = Tool.exec(List.of("losetup", "-J", "-l"));
        List<String> out = new ArrayList<>();
        if (!r.ok() || r.stdout().isBlank()) {
            return out; // no loop devices at all: losetup prints nothing
        }
        String prefix = dir.toAbsolutePath().normalize() + "/";
        for (JsonNode d : new ObjectMapper().readTree(r.stdout()).path("loopdevices")) {
            String back = d.path("back-file").asText("");
            if (back.startsWith(prefix) || devices.contains(back)) {
                out.add(d.path("name").asText());
            }
        }
        return out;
    }
}
