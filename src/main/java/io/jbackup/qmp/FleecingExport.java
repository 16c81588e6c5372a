package io.jbackup.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jbackup.text.Human;
import io.jbackup.nbd.server.SocketPathException;
import io.jbackup.nbd.server.UnixSockets;
import io.jbackup.error.UsageException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.BiConsumer;

/**
 * A point-in-time, read-only NBD export of running disks, made with QEMU's image-fleecing method, and the dirty
 * bitmaps that carry a backup chain from one point in time to the next.
 *
 * <h2>Why {@code blockdev-backup sync=none}</h2>
 * QEMU 7.2 offers two fleecing methods: (a) a {@code copy-before-write} filter plus a {@code snapshot-access} node,
 * and (b) a {@code blockdev-backup} job with {@code sync: none} into a qcow2 overlay whose backing is the disk
 * ({@code tests/qemu-iotests/tests/image-fleecing} covers both). (a) needs the guest device re-pointed at the
 * filter with {@code qom-set ... drive} (there is no {@code blockdev-replace} in 7.2), which works only for
 * devices, not for other parents of the node such as an NBD export or qemu-storage-daemon's exports, and
 * {@code blockdev-add} is not a transaction action, so the snapshot and the new bitmap could not start at one
 * instant. (b) is a transaction action: the job inserts its own copy-before-write filter above the node for every
 * parent, and block-copy detects the fleecing layout (the target's backing chain contains the source) and
 * serializes its copies against reads of the target, so a reader never sees data the guest wrote after the
 * instant. jbackup therefore uses (b).
 *
 * <h2>QMP sequence</h2>
 * <ol>
 *   <li>{@link #prepare}: remove leftovers of an interrupted run of the same repository and disk (export, job,
 *       nodes, all named with the disk's {@link Disk#token() token}); per disk, {@code blockdev-create} (file, then
 *       qcow2 of the disk's size, each a job awaited through {@code JOB_STATUS_CHANGE} and dismissed) and
 *       {@code blockdev-add} of the fleecing image {@code TOKEN-fl} with {@code backing: NODE}.</li>
 *   <li>{@link #pointInTime}: one {@code transaction} of, per disk, {@code blockdev-backup} (job {@code TOKEN-fleece},
 *       {@code sync: none}, target {@code TOKEN-fl}), {@code block-dirty-bitmap-add} of the new bitmap (persistent on
 *       qcow2 nodes), and, for an incremental, {@code block-dirty-bitmap-disable} of the previous bitmap, so it
 *       holds exactly the writes between the previous point in time and this one (QEMU also refuses to export an
 *       enabled bitmap of a writable node read-only).</li>
 *   <li>{@link #export}: {@code nbd-server-start} on a private unix socket (or an already running server given by
 *       the caller), and {@code block-export-add} of {@code TOKEN-fl} ({@code writable: false},
 *       {@code allocation-depth: true}, {@code bitmaps: [previous]}; QEMU finds the bitmap in the backing chain).</li>
 *   <li>The caller reads the exports and commits; it calls {@link #committed} per disk. Meanwhile
 *       {@code BLOCK_JOB_*}/{@code JOB_STATUS_CHANGE} events of the fleecing jobs are watched: a job that ends
 *       early means QEMU stopped copying old data aside, so the export is no longer a point in time
 *       ({@link #lost}).</li>
 *   <li>{@link #close}: {@code block-export-del} (awaiting {@code BLOCK_EXPORT_DELETED}), {@code block-job-cancel}
 *       (awaiting {@code BLOCK_JOB_CANCELLED}), {@code blockdev-del} of both nodes, {@code nbd-server-stop} if it was
 *       started here, then the bitmaps: for a committed disk {@code block-dirty-bitmap-remove} of the previous and
 *       any other bitmap of the disk's prefix; for any other disk one transaction of
 *       {@code block-dirty-bitmap-merge} (new into previous), {@code block-dirty-bitmap-enable} (previous) and
 *       {@code block-dirty-bitmap-remove} (new), so the previous bitmap again covers every write since the last
 *       committed backup. Finally the temporary files are deleted.</li>
 * </ol>
 * Teardown steps that fail are logged and listed in {@link #warnings()}; they never throw, so they cannot hide
 * the backup's own outcome. A bitmap state left behind by a failed teardown is repaired by the caller's next run
 * (leftover bitmaps of the prefix are merged into the previous one before it is used).
 */
public final class FleecingExport implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(FleecingExport.class);

    /**
     * One disk to export.
     *
     * @param disk         the disk's name in the repository (messages only)
     * @param node         the block node to back up (the guest's format node, e.g. qcow2)
     * @param size         its virtual size, the fleecing image's size
     * @param token        unique short name for this repository and disk ({@code [A-Za-z][A-Za-z0-9-]{0,22}});
     *                     QEMU objects are named {@code TOKEN-fl}, {@code TOKEN-ff}, {@code TOKEN-fleece} and
     *                     export {@code TOKEN}
     * @param bitmapPrefix prefix of every bitmap of this repository and disk
     * @param newBitmap    the bitmap to add at the point in time (starts with {@code bitmapPrefix})
     * @param persistent   whether the new bitmap is stored in the image (qcow2 nodes only)
     * @param prevBitmap   the bitmap of the last committed backup, or null
     * @param usePrev      whether this backup is incremental: disable {@code prevBitmap} at the point in time and
     *                     export it
     */
    public record Disk(String disk, String node, long size, String token, String bitmapPrefix, String newBitmap,
                       boolean persistent, String prevBitmap, boolean usePrev) {
        public Disk {
            if (token == null || !token.matches("[A-Za-z][A-Za-z0-9-]{0,22}")) {
                throw new IllegalArgumentException("token '" + token + "' (expected: a letter, then up to 22 "
                    + "letters, digits or '-'; QEMU node names have at most 31 characters)");
            }
            if (newBitmap == null || !newBitmap.startsWith(bitmapPrefix) || newBitmap.length() > 1023) {
                throw new IllegalArgumentException("new bitmap '" + newBitmap + "' must start with '" + bitmapPrefix
                    + "' and have at most 1023 characters");
            }
            if (usePrev && prevBitmap == null) {
                throw new IllegalArgumentException("an incremental export of " + disk + " needs the previous bitmap");
            }
            if (size <= 0) {
                throw new IllegalArgumentException("node " + node + " size " + size + " (expected: > 0)");
            }
        }

        String fleeceNode() {
            return token + "-fl";
        }

        String fileNode() {
            return token + "-ff";
        }

        String job() {
            return token + "-fleece";
        }
    }

    /**
     * Where things go.
     *
     * @param scratchDir directory QEMU can write to, for the fleecing images and the private NBD socket; null for a
     *                   new private temporary directory
     * @param nbdServer  unix socket of an NBD server QEMU already runs (QEMU runs at most one); null to start a
     *                   private one
     * @param timeout    bound of each QMP command and awaited event
     */
    public record Options(Path scratchDir, Path nbdServer, Duration timeout) {
        public Options {
            if (timeout == null || timeout.isNegative() || timeout.isZero()) {
                throw new IllegalArgumentException("QMP timeout " + Human.duration(timeout) + " (expected: > 0)");
            }
        }
    }

    private final QmpClient qmp;
    private final List<Disk> disks;
    private final Options options;
    private final Map<String, Disk> byJob = new LinkedHashMap<>();
    private final Set<String> nodesAdded = new LinkedHashSet<>();
    private final Set<String> exportsAdded = new LinkedHashSet<>();
    private final Set<String> committed = ConcurrentHashMap.newKeySet();
    private final Map<String, String> lost = new ConcurrentHashMap<>();
    private final List<Path> files = new ArrayList<>();
    private final FleecingCleanup cleanup;
    private final BiConsumer<String, String> onLost;
    private final java.util.function.Consumer<QmpEvent> watcher = this::watch;
    private Path dir;
    private boolean ownDir;
    private Path serverSocket;
    private boolean ownServer;
    private Object serverSocketIdentity;
    private volatile boolean snapshotTaken;
    private volatile boolean tearingDown;
    private boolean closed;

    private FleecingExport(QmpClient qmp, List<Disk> disks, Options options, BiConsumer<String, String> onLost) {
        this.qmp = qmp;
        this.disks = List.copyOf(disks);
        this.options = options;
        this.onLost = onLost;
        this.cleanup = new FleecingCleanup(qmp, options.timeout());
        for (Disk d : disks) {
            if (byJob.put(d.job(), d) != null) {
                throw new IllegalArgumentException("two disks share token " + d.token());
            }
        }
    }

    /**
     * Removes leftovers of an interrupted run and creates the fleecing images. On failure everything made so far
     * is removed again.
     *
     * @param onLost called (on the QMP reader thread; must be quick) with a disk and the reason when the disk's
     *               fleecing job ends before {@link #close}, or the QMP connection drops
     */
    public static FleecingExport prepare(QmpClient qmp, List<Disk> disks, Options options,
                                         BiConsumer<String, String> onLost) throws IOException {
        FleecingExport f = new FleecingExport(qmp, disks, options, onLost);
        try {
            for (Disk d : disks) {
                f.cleanup.removeLeftovers(d);
            }
            f.makeDir();
            for (Disk d : disks) {
                f.createImage(d);
            }
            return f;
        } catch (IOException | RuntimeException e) {
            f.close();
            throw e;
        }
    }

    // ---------------------------------------------------------------- fleecing images

    private void makeDir() throws IOException {
        if (options.scratchDir() == null) {
            dir = Files.createTempDirectory("jbackup-live-",
                PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
            ownDir = true;
        } else {
            dir = options.scratchDir().toAbsolutePath();
            if (!Files.isDirectory(dir)) {
                throw new UsageException("scratch directory " + dir + " does not exist (create it, "
                    + "writable by QEMU, or leave out --scratch-dir)");
            }
        }
    }

    private void createImage(Disk d) throws IOException {
        Path file = dir.resolve(d.token() + ".fleece.qcow2");
        Files.deleteIfExists(file);
        files.add(file);
        runCreateJob(d.token() + "-mk1", QmpClient.args("driver", "file", "filename", file.toString(), "size", 0));
        qmp.execute("blockdev-add", QmpClient.args("driver", "file", "node-name", d.fileNode(),
            "filename", file.toString()));
        nodesAdded.add(d.fileNode());
        runCreateJob(d.token() + "-mk2", QmpClient.args("driver", "qcow2", "file", d.fileNode(), "size", d.size()));
        qmp.execute("blockdev-add", QmpClient.args("driver", "qcow2", "node-name", d.fleeceNode(),
            "file", d.fileNode(), "backing", d.node()));
        nodesAdded.add(d.fleeceNode());
        LOG.debug("{}: fleecing image {} on {}", d.disk(), file, d.node());
    }

    /** {@code blockdev-create} as a job: awaits its conclusion, reports its error, dismisses it. */
    private void runCreateJob(String id, ObjectNode createOptions) throws IOException {
        try (QmpClient.EventWait w = qmp.expect("job " + id + " concluding",
            e -> FleecingCleanup.isJobStatus(e, id, "concluded"))) {
            qmp.execute("blockdev-create", QmpClient.args("job-id", id, "options", createOptions));
            w.await(options.timeout());
        }
        String error = null;
        for (JsonNode j : qmp.execute("query-jobs")) {
            if (j.path("id").asText().equals(id) && j.hasNonNull("error")) {
                error = j.get("error").asText();
            }
        }
        qmp.execute("job-dismiss", QmpClient.args("id", id));
        if (error != null) {
            throw new QmpException("blockdev-create", "JobFailed", "creating " + createOptions.path("driver").asText()
                + " " + createOptions.path("filename").asText(createOptions.path("file").asText()) + " failed: "
                + error + (createOptions.has("filename") ? " (the scratch directory must be writable by QEMU; see "
                + "--scratch-dir)" : ""));
        }
    }

    // ---------------------------------------------------------------- the point in time

    /**
     * Freezes the point in time for every disk in one transaction: the fleecing jobs start, the new bitmaps start
     * recording, the previous bitmaps of incrementals stop. Call it with guest filesystems frozen, if at all.
     */
    public void pointInTime() throws IOException {
        List<ObjectNode> actions = new ArrayList<>();
        for (Disk d : disks) {
            actions.add(QmpClient.action("blockdev-backup", QmpClient.args("job-id", d.job(), "device", d.node(),
                "target", d.fleeceNode(), "sync", "none")));
            actions.add(QmpClient.action("block-dirty-bitmap-add", QmpClient.args("node", d.node(),
                "name", d.newBitmap(), "persistent", d.persistent())));
            if (d.usePrev()) {
                actions.add(QmpClient.action("block-dirty-bitmap-disable", QmpClient.args("node", d.node(),
                    "name", d.prevBitmap())));
            }
        }
        qmp.addListener(watcher);
        qmp.closed().thenAccept(why -> {
            for (Disk d : disks) {
                markLost(d, "the QMP connection to " + qmp.socket() + " was lost (" + why.getMessage()
                    + "), so jbackup cannot tell whether the point in time held");
            }
        });
        qmp.transaction(actions);
        snapshotTaken = true;
    }

    private void watch(QmpEvent e) {
        if (tearingDown) {
            return;
        }
        String id = switch (e.name()) {
            case "BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED", "BLOCK_JOB_ERROR" -> e.text("device");
            case "JOB_STATUS_CHANGE" -> switch (e.text("status")) {
                case "aborting", "concluded", "null", "waiting", "pending" -> e.text("id");
                default -> null;
            };
            default -> null;
        };
        Disk d = id == null ? null : byJob.get(id);
        if (d != null) {
            markLost(d, "QEMU's fleecing job " + id + " for node " + d.node() + " ended early (" + e.name() + " "
                + e.data() + "), so guest writes are no longer kept out of the export");
        }
    }

    private void markLost(Disk d, String why) {
        if (tearingDown || lost.putIfAbsent(d.disk(), why) != null) {
            return;
        }
        LOG.warn("{}: {}", d.disk(), why);
        onLost.accept(d.disk(), why);
    }

    // ---------------------------------------------------------------- the export

    /**
     * Exports every disk's fleecing image; returns disk name to NBD export name, all on {@link #serverSocket()}.
     */
    public Map<String, String> export() throws IOException {
        if (options.nbdServer() == null) {
            // named after the run's first disk: runs of other VMs may share a --scratch-dir
            serverSocket = dir.resolve(disks.get(0).token() + "-nbd.sock");
            try {
                UnixSockets.claim(serverSocket, "--scratch-dir");
            } catch (SocketPathException e) {
                throw new SocketPathException(e.path(), e.reason(), e.getMessage() + (e.reason()
                    == SocketPathException.Reason.IN_USE ? " (if an interrupted jbackup run left QEMU's NBD server "
                    + "running, stop it with the QMP command nbd-server-stop)" : ""));
            }
            try {
                qmp.execute("nbd-server-start", QmpClient.args("addr", Map.of("type", "unix",
                    "data", Map.of("path", serverSocket.toString()))));
            } catch (QmpException e) {
                if (e.description().contains("already running")) {
                    throw new QmpException(e.command(), e.errorClass(), e.description() + ": QEMU runs at most one "
                        + "NBD server; give its unix socket with --nbd-server PATH and jbackup adds its export "
                        + "there (if an interrupted jbackup run left it, stop it with the QMP command "
                        + "nbd-server-stop)");
                }
                throw e;
            }
            ownServer = true;
            serverSocketIdentity = UnixSockets.identity(serverSocket);
        } else {
            serverSocket = options.nbdServer().toAbsolutePath();
        }
        Map<String, String> names = new LinkedHashMap<>();
        for (Disk d : disks) {
            ObjectNode args = QmpClient.args("type", "nbd", "id", d.token(), "node-name", d.fleeceNode(),
                "name", d.token(), "writable", false, "allocation-depth", true,
                "description", "jbackup point-in-time view of " + d.node());
            if (d.usePrev()) {
                args.putArray("bitmaps").add(d.prevBitmap());
            }
            qmp.execute("block-export-add", args);
            exportsAdded.add(d.token());
            names.put(d.disk(), d.token());
        }
        return names;
    }

    /** The unix socket of the NBD server the exports are on (after {@link #export}). */
    public Path serverSocket() {
        return serverSocket;
    }

    /**
     * Why the disk's export stopped being a point in time, if it did: its fleecing job ended (as reported by an
     * event or as seen now in {@code query-block-jobs}), or the QMP connection was lost.
     */
    public Optional<String> lost(String disk) {
        String why = lost.get(disk);
        if (why != null) {
            return Optional.of(why);
        }
        Disk d = disks.stream().filter(x -> x.disk().equals(disk)).findFirst().orElseThrow();
        try {
            for (JsonNode j : qmp.execute("query-block-jobs")) {
                if (j.path("device").asText().equals(d.job())) {
                    String status = j.path("status").asText("running");
                    return status.equals("running") || status.equals("ready") ? Optional.empty()
                        : Optional.of("QEMU's fleecing job " + d.job() + " is " + status);
                }
            }
            return Optional.of("QEMU's fleecing job " + d.job() + " for node " + d.node() + " is gone");
        } catch (IOException e) {
            return Optional.of("cannot check QEMU's fleecing job " + d.job() + ": " + e.getMessage());
        }
    }

    /** Marks a disk's backup as committed to the repository: {@link #close} retires its previous bitmap. */
    public void committed(String disk) {
        committed.add(disk);
    }

    /** Teardown problems, for the user (empty when all went well). */
    public synchronized List<String> warnings() {
        return List.copyOf(cleanup.warnings());
    }

    // ---------------------------------------------------------------- teardown

    /** Removes everything this object made, then settles the bitmaps (see the class comment). Never throws. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        tearingDown = true;
        qmp.removeListener(watcher);
        for (String id : exportsAdded) {
            cleanup.step("remove NBD export " + id, () -> cleanup.deleteExport(id));
        }
        if (snapshotTaken) {
            for (Disk d : disks) {
                cleanup.step("cancel fleecing job " + d.job(), () -> cleanup.cancelJob(d.job()));
            }
        }
        List<String> nodes = new ArrayList<>(nodesAdded);
        java.util.Collections.reverse(nodes);
        for (String n : nodes) {
            cleanup.step("remove block node " + n, () -> qmp.execute("blockdev-del", QmpClient.args("node-name", n)));
        }
        if (ownServer) {
            cleanup.step("stop the private NBD server", () -> qmp.execute("nbd-server-stop"));
            UnixSockets.removeIfOurs(serverSocket, serverSocketIdentity);
        }
        if (snapshotTaken) {
            for (Disk d : disks) {
                if (committed.contains(d.disk())) {
                    cleanup.step("retire the previous bitmaps of " + d.disk(), () -> cleanup.retire(d));
                } else {
                    cleanup.step("merge bitmap " + d.newBitmap() + " back into " + (d.prevBitmap() == null ? "nothing"
                        : d.prevBitmap()) + " (the next run retries)", () -> cleanup.rollBack(d));
                }
            }
        }
        for (Path f : files) {
            cleanup.step("delete " + f, () -> Files.deleteIfExists(f));
        }
        if (ownDir && dir != null) {
            cleanup.step("delete " + dir, () -> Files.deleteIfExists(dir));
        }
    }
}
