package io.jbackup.cli;

import io.jbackup.error.UsageException;
import io.jbackup.store.LockMode;
import io.jbackup.store.RebuildReport;
import io.jbackup.store.Repository;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.util.concurrent.Callable;

/** {@code jbackup repair}: maintenance that rewrites repository metadata. */
@Command(name = "repair", mixinStandardHelpOptions = true, description = "Repair repository metadata (takes the exclusive lock).")
public final class RepairCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    RepoOptions repoOptions;

    @Mixin
    JsonMixin json;

    @Mixin
    LoggingMixin logging;

    @Option(names = "--rebuild-catalog", description = "Rebuild the catalog from the pack files and index files "
        + "alone; the old catalog is kept as catalog.db.old-TIMESTAMP. For an s3:// repository, this host's cache "
        + "catalog is rebuilt from the bucket (manifests, index objects, pack footers), kept aside likewise in the "
        + "cache directory.")
    boolean rebuildCatalog;

    @Override
    public Integer call() throws Exception {
        if (!rebuildCatalog) {
            throw new UsageException("nothing to repair: give --rebuild-catalog");
        }
        RebuildReport r = Repository.rebuildCatalog(repoOptions.location(), repoOptions.openOptions(LockMode.EXCLUSIVE));
        if (json.enabled()) {
            json.print(r);
            return ExitCodes.OK;
        }
        if (logging.quiet && r.problems().isEmpty()) {
            return ExitCodes.OK;
        }
        PrintWriter out = spec.commandLine().getOut();
        out.printf("Rebuilt the catalog of %s: %d packs, %d chunks, %d backups (%d marked bad).%n", repoOptions.display(),
            r.packs(), r.chunks(), r.backups(), r.badBackups());
        if (r.oldCatalog() != null) {
            out.printf("The previous catalog is kept as %s.%n", r.oldCatalog());
        }
        for (String p : r.problems()) {
            out.printf("PROBLEM: %s%n", p);
        }
        if (!r.problems().isEmpty()) {
            out.printf("Run jbackup verify to see which backups are affected.%n");
        }
        out.flush();
        return ExitCodes.OK;
    }
}
