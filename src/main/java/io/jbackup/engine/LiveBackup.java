package io.jbackup.engine;

import io.jbackup.error.UsageException;
import io.jbackup.model.BackupInfo;
import io.jbackup.nbd.client.ClientOptions;
import io.jbackup.nbd.client.NbdUri;
import io.jbackup.qmp.BlockNodes;
import io.jbackup.qmp.FleecingExport;
import io.jbackup.qmp.FsFreeze;
import io.jbackup.qmp.GuestAgent;
import io.jbackup.qmp.QmpClient;
import io.jbackup.qmp.QmpException;
import io.jbackup.store.FileMutex;
import io.jbackup.store.Repository;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Backs up the disks of a running QEMU through QMP: jbackup makes the point-in-time export and keeps the dirty
 * bitmaps in step with the repository itself ({@link FleecingExport} has the QMP sequence).
 *
 * <p>Per disk, the bitmaps of one repository are named {@code jbackup-<repo id, 8 chars>-<disk>-<n>}. A backup
 * records the bitmap added at its point in time in the label {@value #LABEL_BITMAP} (and the node in
 * {@value #LABEL_NODE}): that bitmap holds every write since the backup, so the next incremental exports it as the
 * previous bitmap. Before that the bitmap is checked: it must exist on the node, be consistent, and still record
 * writes (or a later bitmap of the same prefix, left by an interrupted run, must exist to be merged into it).
 * Otherwise {@code incremental} refuses and {@code auto} makes a full backup and says why.
 *
 * <p>Order of events: decide every disk (refusing before anything in QEMU changes); merge leftover bitmaps into
 * the previous one; create the fleecing images; connect the guest agent and freeze the guest's filesystems
 * (optional); the transaction; thaw; export; run {@link BackupEngine}; for each committed disk check that its
 * fleecing job was still running (if not, the backup is marked bad); tear down, retiring the previous bitmap of
 * committed disks and merging the new bitmap back into the previous one for the others.
 */
public final class LiveBackup {
    private static final Logger LOG = LoggerFactory.getLogger(LiveBackup.class);
    /** Label naming the dirty bitmap that records writes since the backup. */
    public static final String LABEL_BITMAP = "jbackup.bitmap";
    /** Label naming the QEMU block node the backup was read from. */
    public static final String LABEL_NODE = "jbackup.node";

    private final Repository repo;
    private final EngineOptions options;
    private final ProgressListener progress;
    private final Cancellation cancel;

    public LiveBackup(Repository repo, EngineOptions options, ProgressListener progress, Cancellation cancel) {
        this.repo = repo;
        this.options = options;
        this.progress = progress;
        this.cancel = cancel;
    }

    /** The plan for one disk. */
    private record Plan(LiveSource.Disk source, String label, BlockNodes.Node node, FleecingExport.Disk fleece,
                        BackupMode jobMode, String fullReason) {
    }

    /**
     * Backs up the source's disks as one set at one point in time. Returns each disk's result (a disk that fails
     * does not stop the others); throws when nothing could start (QMP unreachable, refused incremental, ...).
     */
    public List<DiskResult> run(LiveSource source, String vm, BackupMode mode, ClientOptions client,
                                Map<String, String> labels, String note) throws IOException, InterruptedException {
        // before QEMU is touched: a second run would take the first one's QEMU objects for leftovers of a crash
        List<FileMutex> locks = BackupEngine.lockDisks(repo, options, cancel, source.disks().stream()
            .map(d -> new BackupEngine.DiskKey(vm, d.disk())).toList(), mode.name().toLowerCase(java.util.Locale.ROOT)
            + " live backup", note == null ? "QMP " + source.qmpSocket() : note);
        try {
            try (QmpClient qmp = QmpClient.connect(source.qmpSocket(), source.qmpTimeout())) {
                if (!qmp.versionAtLeast(5, 2)) {
                    throw new QmpException("query-version", "Unsupported", "QEMU " + qmp.version() + " at "
                        + source.qmpSocket() + " is too old: jbackup needs QEMU 5.2 or newer (block-export-add with "
                        + "allocation-depth and bitmaps); use a pull-mode export (libvirt backup-begin) instead");
                }
                LOG.info("QMP {}: QEMU {}", source.qmpSocket(), qmp.version());
                List<Plan> plans = new ArrayList<>();
                java.util.Set<String> nodes = new java.util.HashSet<>();
                for (LiveSource.Disk d : source.disks()) {
                    Plan p = plan(qmp, d, vm, mode);
                    if (!nodes.add(p.fleece().node())) {
                        throw new UsageException("node " + p.fleece().node() + " is given for two disks");
                    }
                    plans.add(p);
                }
                for (Plan p : plans) {
                    if (p.fleece().usePrev()) {
                        reconcile(qmp, p);
                    }
                }
                return backUp(qmp, source, plans, vm, client, labels, note);
            }
        } finally {
            locks.forEach(FileMutex::close);
        }
    }

    // ---------------------------------------------------------------- planning

    private Plan plan(QmpClient qmp, LiveSource.Disk d, String vm, BackupMode mode) throws IOException {
        String nodeName = d.node() != null ? d.node() : BlockNodes.resolveDevice(qmp, d.device());
        BlockNodes.Node node = BlockNodes.node(qmp, nodeName);
        if (node.size() <= 0) {
            throw new QmpException("query-named-block-nodes", "Unsupported", "node " + nodeName
                + " reports no virtual size; give the format node (e.g. the qcow2 node) with --node");
        }
        String label = vm == null ? d.disk() : vm + "/" + d.disk();
        String repoId = repo.config().id().replace("-", "");
        String prefix = "jbackup-" + repoId.substring(0, Math.min(8, repoId.length())) + "-" + d.disk() + "-";
        String why = null;
        String prev = null;
        Optional<BackupInfo> latest = repo.latestComplete(vm, d.disk());
        if (latest.isEmpty()) {
            why = "there is no complete backup of disk " + d.disk() + (vm == null ? "" : " of VM " + vm)
                + " to build on";
        } else {
            BackupInfo b = latest.get();
            String recorded = b.labels().get(LABEL_BITMAP);
            if (recorded == null) {
                why = "the newest backup " + b.id() + " of " + label + " was not taken through QMP (it records no "
                    + LABEL_BITMAP + " label), so no bitmap holds the writes since it";
            } else {
                why = distrust(node, recorded, prefix, b.id());
                prev = why == null ? recorded : null;
            }
        }
        if (mode == BackupMode.INCREMENTAL && prev == null) {
            throw new BackupRefusedException("cannot back up " + label + " incrementally: " + why
                + "; run 'jbackup full' (or 'jbackup auto', which falls back to a full backup)");
        }
        boolean incremental = mode != BackupMode.FULL && prev != null;
        boolean persistent = node.driver().equals("qcow2");
        if (!persistent) {
            String msg = "node " + nodeName + " is " + node.driver() + ", not qcow2: its dirty bitmap is not "
                + "persistent and is lost when QEMU stops (the next backup after that is a full one)";
            progress.warning(label, msg);
        }
        String newBitmap = prefix + (lastGeneration(node, prefix) + 1);
        FleecingExport.Disk f = new FleecingExport.Disk(d.disk(), nodeName, node.size(), token(vm, d.disk()),
            prefix, newBitmap, persistent, prev, incremental);
        BackupMode jobMode = switch (mode) {
            case FULL -> BackupMode.FULL;
            case INCREMENTAL -> BackupMode.INCREMENTAL;
            case AUTO -> incremental ? BackupMode.AUTO : BackupMode.FULL;
        };
        return new Plan(d, label, node, f, jobMode, mode == BackupMode.AUTO && !incremental ? why : null);
    }

    /** Null when the recorded bitmap can carry the next incremental; otherwise why not. */
    private static String distrust(BlockNodes.Node node, String recorded, String prefix, String backupId)
        throws QmpException {
        Optional<BlockNodes.DirtyBitmap> bm = node.bitmap(recorded);
        if (bm.isEmpty()) {
            return "bitmap " + recorded + ", recorded with backup " + backupId + ", is missing on node " + node.name()
                + " (it was removed, or QEMU restarted and the bitmap was not persistent)";
        }
        BlockNodes.DirtyBitmap b = bm.get();
        if (b.busy()) {
            throw new QmpException("query-named-block-nodes", "BitmapBusy", "bitmap " + recorded + " on node "
                + node.name() + " is in use by an export or a job; is another jbackup run backing up this disk?");
        }
        if (b.inconsistent()) {
            return "bitmap " + recorded + " on node " + node.name() + " is inconsistent (QEMU did not close the "
                + "image cleanly), so it may miss writes";
        }
        if (!b.recording() && node.bitmaps().stream().noneMatch(x -> x.name().startsWith(prefix)
            && !x.name().equals(recorded) && x.recording() && !x.inconsistent())) {
            return "bitmap " + recorded + " on node " + node.name() + " stopped recording and no later bitmap of "
                + "this repository covers the writes since";
        }
        return null;
    }

    /**
     * Merges bitmaps of the prefix other than the previous one (left by interrupted runs) into the previous one,
     * enables it, and removes them: merging only adds dirty areas, so nothing is ever lost.
     */
    private void reconcile(QmpClient qmp, Plan p) throws IOException {
        String prev = p.fleece().prevBitmap();
        String node = p.fleece().node();
        List<String> others = new ArrayList<>();
        boolean recording = true;
        for (BlockNodes.DirtyBitmap b : p.node().bitmaps()) {
            if (b.name().equals(prev)) {
                recording = b.recording();
            } else if (b.name().startsWith(p.fleece().bitmapPrefix())) {
                others.add(b.name());
            }
        }
        if (others.isEmpty() && recording) {
            return;
        }
        List<com.fasterxml.jackson.databind.node.ObjectNode> actions = new ArrayList<>();
        if (!others.isEmpty()) {
            actions.add(QmpClient.action("block-dirty-bitmap-merge", QmpClient.args("node", node, "target", prev,
                "bitmaps", others)));
        }
        if (!recording) {
            actions.add(QmpClient.action("block-dirty-bitmap-enable", QmpClient.args("node", node, "name", prev)));
        }
        for (String o : others) {
            actions.add(QmpClient.action("block-dirty-bitmap-remove", QmpClient.args("node", node, "name", o)));
        }
        qmp.transaction(actions);
        String msg = (others.size() == 1 ? "merged bitmap " : "merged bitmaps ") + others
            + " left by an interrupted run into " + prev;
        progress.warning(p.label(), msg);
    }

    private static long lastGeneration(BlockNodes.Node node, String prefix) {
        long max = 0;
        for (BlockNodes.DirtyBitmap b : node.bitmaps()) {
            if (b.name().startsWith(prefix)) {
                String n = b.name().substring(prefix.length());
                if (n.matches("[0-9]{1,18}")) {
                    max = Math.max(max, Long.parseLong(n));
                }
            }
        }
        return max;
    }

    /** {@code jbackup-XXXXXXXX}: unique per repository, VM and disk; short enough for QEMU node names. */
    private String token(String vm, String disk) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            byte[] h = md.digest((repo.config().id() + "\n" + (vm == null ? "" : vm) + "\n" + disk)
                .getBytes(StandardCharsets.UTF_8));
            return "jbackup-" + HexFormat.of().formatHex(h, 0, 4);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    // ---------------------------------------------------------------- the backup

    private List<DiskResult> backUp(QmpClient qmp, LiveSource source, List<Plan> plans, String vm,
                                    ClientOptions client, Map<String, String> labels, String note)
        throws IOException, InterruptedException {
        List<FleecingExport.Disk> disks = plans.stream().map(Plan::fleece).toList();
        FleecingExport.Options fo = new FleecingExport.Options(source.scratchDir(), source.nbdServer(),
            source.qmpTimeout());
        GuestAgent agent = source.qgaSocket() == null ? null
            : GuestAgent.connect(source.qgaSocket(), source.qgaTimeout());
        List<DiskResult> results = new ArrayList<>();
        FleecingExport fleece;
        try {
            fleece = FleecingExport.prepare(qmp, disks, fo, (disk, why) -> cancel.cancel("disk " + disk + ": " + why));
        } catch (IOException | RuntimeException e) {
            if (agent != null) {
                agent.close();
            }
            throw e;
        }
        try {
            try {
                if (agent != null) {
                    try (FsFreeze frozen = FsFreeze.freeze(agent, source.qgaTimeout())) {
                        fleece.pointInTime();
                        LOG.info("froze {} guest filesystem(s) around the point in time", frozen.frozenCount());
                    }
                } else {
                    fleece.pointInTime();
                }
            } finally {
                if (agent != null) {
                    agent.close();
                }
            }
            for (Plan p : plans) {
                progress.message(p.label(), "point in time taken: node " + p.fleece().node() + ", new bitmap "
                    + p.fleece().newBitmap() + (p.fleece().usePrev() ? ", reading the writes recorded by "
                    + p.fleece().prevBitmap() : ", full read"));
            }
            Map<String, String> exports = fleece.export();
            List<DiskJob> jobs = new ArrayList<>();
            for (Plan p : plans) {
                Map<String, String> l = new HashMap<>(labels);
                l.put(LABEL_BITMAP, p.fleece().newBitmap());
                l.put(LABEL_NODE, p.fleece().node());
                NbdUri uri = NbdUri.unix(fleece.serverSocket(), exports.get(p.source().disk()), false);
                jobs.add(new DiskJob(vm, p.source().disk(), uri, client, p.jobMode(),
                    p.fleece().usePrev() ? p.fleece().prevBitmap() : null, l, note));
            }
            List<DiskResult> raw;
            try {
                raw = new BackupEngine(repo, options, progress, cancel).runLocked(jobs);
            } catch (IllegalStateException e) { // CancellationException, or a cancelled worker of a multi-disk set
                List<String> lost = plans.stream().map(p -> fleece.lost(p.source().disk()).orElse(null))
                    .filter(java.util.Objects::nonNull).toList();
                if (lost.isEmpty()) {
                    throw e;
                }
                raw = new ArrayList<>();
                for (Plan p : plans) {
                    String why = "the point-in-time view was lost: " + String.join("; ", lost);
                    raw.add(failed(vm, p.source().disk(), why, new QmpException("backup", "FleecingLost", why)));
                }
            }
            for (DiskResult r : raw) {
                Plan p = plans.stream().filter(x -> x.source().disk().equals(r.disk())).findFirst().orElseThrow();
                results.add(settle(fleece, p, r));
            }
        } finally {
            fleece.close();
            for (String w : fleece.warnings()) {
                progress.warning(vm == null ? plans.get(0).label() : vm, w);
            }
        }
        return results;
    }

    /** A finished disk: commit-checked, reason annotated. */
    private DiskResult settle(FleecingExport fleece, Plan p, DiskResult r) throws IOException {
        if (!r.ok()) {
            return r;
        }
        Optional<String> lost = fleece.lost(p.source().disk());
        if (lost.isPresent()) {
            String why = "the point-in-time view was lost during the backup: " + lost.get();
            repo.markBad(r.backupId(), why);
            progress.message(p.label(), "backup " + r.backupId() + " marked bad: " + why);
            return failed(r.vm(), r.disk(), why, new QmpException("backup", "FleecingLost", why));
        }
        fleece.committed(p.source().disk());
        if (p.fullReason() != null && "full".equals(r.type())) {
            return new DiskResult(r.vm(), r.disk(), r.status(), r.backupId(), r.type(), r.parentId(),
                "full backup: " + p.fullReason(), r.imageSize(), r.bytesRead(), r.bytesNew(), r.bytesDedup(),
                r.bytesZero(), r.bytesStored(), r.seconds(), r.readMBps(), r.retries(), r.error());
        }
        return r;
    }

    private static DiskResult failed(String vm, String disk, String why, Throwable error) {
        return DiskResult.notBackedUp(vm, disk, "failed", why, error);
    }
}
