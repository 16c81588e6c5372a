package io.jbackup.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * The clean-up steps of a {@link FleecingExport}: removing what an interrupted run left (export, jobs, nodes of the
 * disk's token), and the teardown's QMP steps (delete an export, cancel a job, settle the bitmaps after a commit or
 * a failure). Teardown steps run through {@link #step}: a failure is logged and kept as a warning, never thrown.
 */
final class FleecingCleanup {
    /** Logs under {@link FleecingExport}'s name, as before the clean-up was split off. */
    private static final Logger LOG = LoggerFactory.getLogger(FleecingExport.class);

    private final QmpClient qmp;
    private final Duration timeout;
    private final List<String> warnings = new ArrayList<>();

    /**
     * @param timeout bound of each awaited event
     */
    FleecingCleanup(QmpClient qmp, Duration timeout) {
        this.qmp = qmp;
        this.timeout = timeout;
    }

    /** Removes the export, job and nodes an interrupted run left for this disk (same token). */
    void removeLeftovers(FleecingExport.Disk d) throws IOException {
        for (JsonNode e : qmp.execute("query-block-exports")) {
            if (e.path("id").asText().equals(d.token())) {
                LOG.warn("{}: removing export {} left by an interrupted jbackup run", d.disk(), d.token());
                deleteExport(d.token());
            }
        }
        for (JsonNode j : qmp.execute("query-jobs")) {
            String id = j.path("id").asText();
            if (id.equals(d.job())) {
                LOG.warn("{}: cancelling fleecing job {} left by an interrupted jbackup run", d.disk(), id);
                cancelJob(id);
            } else if (id.equals(d.token() + "-mk1") || id.equals(d.token() + "-mk2")) {
                dismissJob(id, j.path("status").asText());
            }
        }
        Set<String> names = new LinkedHashSet<>();
        for (BlockNodes.Node n : BlockNodes.nodes(qmp)) {
            names.add(n.name());
        }
        for (String n : List.of(d.fleeceNode(), d.fileNode())) {
            if (names.contains(n)) {
                LOG.warn("{}: removing block node {} left by an interrupted jbackup run", d.disk(), n);
                qmp.execute("blockdev-del", QmpClient.args("node-name", n));
            }
        }
    }

    private void dismissJob(String id, String status) throws IOException {
        if (!"concluded".equals(status)) {
            try (QmpClient.EventWait w = qmp.expect("job " + id + " concluding",
                e -> isJobStatus(e, id, "concluded"))) {
                qmp.execute("job-cancel", QmpClient.args("id", id));
                w.await(timeout);
            }
        }
        qmp.execute("job-dismiss", QmpClient.args("id", id));
    }

    static boolean isJobStatus(QmpEvent e, String id, String status) {
        return e.name().equals("JOB_STATUS_CHANGE") && e.text("id").equals(id) && e.text("status").equals(status);
    }

    /** After a commit: the new bitmap now belongs to the newest backup; every other bitmap of the prefix goes. */
    void retire(FleecingExport.Disk d) throws IOException {
        BlockNodes.Node n = BlockNodes.node(qmp, d.node());
        List<ObjectNode> actions = new ArrayList<>();
        for (BlockNodes.DirtyBitmap b : n.bitmaps()) {
            if (b.name().startsWith(d.bitmapPrefix()) && !b.name().equals(d.newBitmap())) {
                actions.add(QmpClient.action("block-dirty-bitmap-remove", QmpClient.args("node", d.node(),
                    "name", b.name())));
            }
        }
        if (!actions.isEmpty()) {
            qmp.transaction(actions);
        }
    }

    /**
     * After a failure: the previous bitmap takes the new one's writes and records again, the new one goes; so the
     * previous bitmap covers every write since the last committed backup.
     */
    void rollBack(FleecingExport.Disk d) throws IOException {
        Optional<BlockNodes.Node> n = BlockNodes.find(qmp, d.node());
        if (n.isEmpty() || n.get().bitmap(d.newBitmap()).isEmpty()) {
            return;
        }
        List<ObjectNode> actions = new ArrayList<>();
        if (d.prevBitmap() != null && n.get().bitmap(d.prevBitmap()).isPresent()) {
            actions.add(QmpClient.action("block-dirty-bitmap-merge", QmpClient.args("node", d.node(),
                "target", d.prevBitmap(), "bitmaps", List.of(d.newBitmap()))));
            actions.add(QmpClient.action("block-dirty-bitmap-enable", QmpClient.args("node", d.node(),
                "name", d.prevBitmap())));
        }
        actions.add(QmpClient.action("block-dirty-bitmap-remove", QmpClient.args("node", d.node(),
            "name", d.newBitmap())));
        qmp.transaction(actions);
    }

    void deleteExport(String id) throws IOException {
        try (QmpClient.EventWait w = qmp.expect("BLOCK_EXPORT_DELETED for " + id,
            e -> e.name().equals("BLOCK_EXPORT_DELETED") && e.text("id").equals(id))) {
            try {
                qmp.execute("block-export-del", QmpClient.args("id", id, "mode", "hard"));
            } catch (QmpException e) {
                if (e.description().contains("not found")) {
                    return; // already gone
                }
                throw e;
            }
            w.await(timeout);
        }
    }

    void cancelJob(String id) throws IOException {
        try (QmpClient.EventWait w = qmp.expect("the end of job " + id, e -> (e.name().equals("BLOCK_JOB_CANCELLED")
            || e.name().equals("BLOCK_JOB_COMPLETED")) && e.text("device").equals(id))) {
            try {
                qmp.execute("block-job-cancel", QmpClient.args("device", id, "force", true));
            } catch (QmpException e) {
                if (e.errorClass().equals("DeviceNotActive") || e.description().contains("not found")
                    || e.description().contains("No active block job")) {
                    return; // already gone
                }
                throw e;
            }
            w.await(timeout);
        }
        for (JsonNode j : qmp.execute("query-jobs")) {
            if (j.path("id").asText().equals(id)) {
                qmp.execute("job-dismiss", QmpClient.args("id", id)); // only if QEMU did not auto-dismiss it
            }
        }
    }

    interface Step {
        void run() throws IOException;
    }

    /** Runs one teardown step: a failure is logged and kept in {@link #warnings()}, never thrown. */
    void step(String what, Step s) {
        try {
            s.run();
        } catch (IOException | RuntimeException e) {
            String msg = "could not " + what + ": " + e.getMessage();
            LOG.debug(msg); // reported once, by the caller (progress warning)
            warnings.add(msg);
        }
    }

    /** The failed steps' messages, in order (callers synchronize). */
    List<String> warnings() {
        return warnings;
    }
}
