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

    /** The loop devices whose backing file lies under {@code dir} (also those whose backing file is gone). */
    public static List<String> backedBy(Path dir) throws IOException {
        Tool.Result r = Tool.exec(List.of("losetup", "-J", "-l"));
        List<String> out = new ArrayList<>();
        if (!r.ok() || r.stdout().isBlank()) {
            return out; // no loop devices at all: losetup prints nothing
        }
        String prefix = dir.toAbsolutePath().normalize() + "/";
        for (JsonNode d : new ObjectMapper().readTree(r.stdout()).path("loopdevices")) {
            String back = d.path("back-file").asText("");
            if (back.startsWith(prefix)) {
                out.add(d.path("name").asText());
            }
        }
        return out;
    }
}
