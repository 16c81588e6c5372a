package io.jbackup.mount;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.jbackup.engine.ExternalToolException;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * The partitions of a disk image, as {@code sfdisk --json IMAGE} (util-linux) reads its MBR or GPT table; jbackup
 * parses no partition table itself. An image without a table (a filesystem on the whole disk) has no partitions.
 *
 * <p>sfdisk's JSON: {@code {"partitiontable": {"label": "gpt"|"dos", "sectorsize": 512, "partitions": [{"node":
 * "IMAGE1", "start": SECTOR, "size": SECTORS, "type": "83"|GUID}, ...]}}}; a partition's number is the digits at the
 * end of its node. MBR extended partitions (types 5, f, 85) only hold logical ones and are left out.
 */
public final class PartitionTable {
    private static final Set<String> EXTENDED = Set.of("5", "f", "85");

    /** One partition: its number in the table, byte offset and length in the image, and type as sfdisk prints it. */
    public record Partition(int number, long offset, long size, String type) {
        public Partition {
            if (number < 1 || offset < 0 || size <= 0) {
                throw new IllegalArgumentException("partition " + number + " at " + offset + " of " + size
                    + " bytes");
            }
        }
    }

    private PartitionTable() {
    }

    /** The partitions of {@code image}, in table order; empty when it has no partition table. */
    public static List<Partition> read(Path image) throws IOException {
        Tool.Result r = Tool.exec(List.of("sfdisk", "--json", image.toString()));
        if (!r.ok()) {
            return List.of(); // "does not contain a recognized partition table"
        }
        return parse(r.stdout());
    }

    /** The partitions in sfdisk's JSON output. */
    static List<Partition> parse(String json) throws ExternalToolException {
        JsonNode t;
        try {
            t = new ObjectMapper().readTree(json).path("partitiontable");
        } catch (IOException e) {
            throw new ExternalToolException("sfdisk --json printed no JSON: " + e.getMessage());
        }
        long sector = t.path("sectorsize").asLong(512);
        List<Partition> out = new ArrayList<>();
        for (JsonNode p : t.path("partitions")) {
            String type = p.path("type").asText("");
            if (EXTENDED.contains(type.toLowerCase(java.util.Locale.ROOT)) && "dos".equals(t.path("label").asText())) {
                continue;
            }
            String node = p.path("node").asText("");
            int i = node.length();
            while (i > 0 && Character.isDigit(node.charAt(i - 1))) {
                i--;
            }
            if (i == node.length()) {
                throw new ExternalToolException("sfdisk --json: partition node '" + node + "' ends in no number");
            }
            out.add(new Partition(Integer.parseInt(node.substring(i)), p.path("start").asLong() * sector,
                p.path("size").asLong() * sector, type));
        }
        return out;
    }
}
