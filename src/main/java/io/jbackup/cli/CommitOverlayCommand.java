package io.jbackup.cli;

import io.jbackup.engine.BackupExports;
import io.jbackup.engine.Cancellation;
import io.jbackup.engine.OverlayCommit;
import io.jbackup.engine.OverlayFiles;
import io.jbackup.error.NotFoundException;
import io.jbackup.model.BackupInfo;
import io.jbackup.store.LockMode;
import io.jbackup.store.Repository;
import io.jbackup.text.Human;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;

/** {@code jbackup commit-overlay}: save what was written through a writable export as a new backup. */
@Command(name = "commit-overlay", mixinStandardHelpOptions = true,
    description = {"Save the image seen through a writable overlay of 'jbackup serve --writable' as a new backup: "
        + "an incremental on top of the served backup, storing only the chunks the overlay changed (deduplicated). "
        + "The served backup itself never changes.",
        "The overlay must not be in use: stop the serve process first. It is deleted after the commit unless "
            + "--keep-overlay."})
public final class CommitOverlayCommand implements Callable<Integer> {
    @Mixin
    RepoOptions repo;
    @Mixin
    JsonMixin json;
    @Mixin
    LoggingMixin logging;

    static final class Which {
        @Option(names = "--overlay", paramLabel = "FILE", required = true,
            description = "The overlay file (DIR/DISK@ID.overlay, as printed by serve at shutdown).")
        Path file;

        @Option(names = "--export", paramLabel = "NAME", required = true,
            description = "The export the overlay was made for (DISK@ID, DISK@latest, VM/DISK@latest); looked up "
                + "in --overlay-dir.")
        String export;
    }

    @ArgGroup(exclusive = true, multiplicity = "1")
    Which which;

    @Option(names = "--overlay-dir", paramLabel = "DIR",
        description = "Where serve kept the overlays, for --export (default: REPO/overlays).")
    Path overlayDir;

    @Option(names = "--note", paramLabel = "TEXT", description = "Note stored with the new backup.")
    String note;

    @Option(names = "--keep-overlay", description = "Keep the overlay files after the commit (by default they are "
        + "deleted: the changes are in the new backup).")
    boolean keep;

    @Override
    public Integer call() throws Exception {
        OverlayCommit.Result r;
        try (Repository rp = repo.open(LockMode.SHARED)) {
            Path file = which.file;
            if (file == null) {
                BackupInfo b = BackupExports.resolve(rp, which.export);
                if (b == null) {
                    throw new NotFoundException("no backup for export '" + which.export + "' in "
                        + repo.display() + "; name the overlay file with --overlay FILE");
                }
                file = OverlayFiles.fileFor(overlayDir != null ? overlayDir : OverlayFiles.defaultDir(rp.dir()), b);
                if (!Files.exists(OverlayFiles.metaFileOf(file))) {
                    throw new NotFoundException("no overlay " + file + " for export '" + which.export
                        + "' (backup " + b.id() + ")" + (overlayDir == null ? "; if serve ran with --overlay-dir "
                        + "DIR, give the same --overlay-dir" : "") + "; if 'latest' moved on since it was served, "
                        + "name the overlay file with --overlay FILE");
                }
            }
            Cancellation cancel = new Cancellation();
            try (OverlayFiles files = OverlayFiles.openExisting(file)) {
                r = Interrupts.run(cancel, () -> OverlayCommit.run(rp, files, note, keep, cancel));
            }
        }
        if (json.enabled()) {
            json.print(r);
        } else if (!logging.quiet) {
            System.out.println((r.vm() == null ? "" : r.vm() + "/") + r.disk() + ": overlay " + r.overlay()
                + " committed as backup " + r.backupId() + " (incremental on " + r.parentId() + "): "
                + Human.count(r.chunks(), "chunk") + " changed (" + r.zeroChunks() + " now zero), "
                + Sizes.format(r.bytesNew()) + " new" + (r.overlayKept() ? "; overlay kept"
                : "; overlay deleted"));
        }
        return ExitCodes.OK;
    }
}
