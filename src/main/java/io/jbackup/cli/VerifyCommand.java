package io.jbackup.cli;

import io.jbackup.store.LockMode;
import io.jbackup.store.Repository;
import io.jbackup.store.VerifyOptions;
import io.jbackup.store.VerifyReport;
import io.jbackup.text.Human;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Callable;

/** {@code jbackup verify}: reads and checks stored chunks and index files. */
@Command(name = "verify", mixinStandardHelpOptions = true, description = {
    "Read every chunk the selected backups use (default: every chunk in the repository) and check its checksum, "
        + "authentication tag and digest; check every index file.",
    "Each damaged chunk is reported with the backups and disk offsets that use it. Exits with 6 if anything is "
        + "damaged."})
public final class VerifyCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    RepoOptions repoOptions;

    @Mixin
    JsonMixin json;

    @Mixin
    LoggingMixin logging;

    @Option(names = "--backup", paramLabel = "ID",
        description = "Verify only this backup (id or unique id prefix); repeatable.")
    List<String> backups = new ArrayList<>();

    @Option(names = "--sample", paramLabel = "PCT", defaultValue = "100",
        description = "Check a random sample of PCT percent of the chunks (default: ${DEFAULT-VALUE}).")
    double samplePercent;

    @Option(names = "--repair", description = "Mark the backups that use damaged chunks or have a damaged index bad, "
        + "and copy the intact records of packs with a damaged footer into new packs (takes the exclusive lock). "
        + "Without it, verify already stops using damaged chunks for deduplication, so the next backup that meets "
        + "their data stores it again.")
    boolean repair;

    @Override
    public Integer call() throws Exception {
        try (Repository repo = repoOptions.open(repair ? LockMode.EXCLUSIVE : LockMode.SHARED)) {
            Set<String> ids = new LinkedHashSet<>();
            for (String ref : backups) {
                ids.add(repo.resolve(null, null, ref).id());
            }
            long run = repo.startRun("verify" + (ids.isEmpty() ? "" : " " + String.join(" ", ids))
                + (samplePercent < 100 ? " --sample " + samplePercent : "") + (repair ? " --repair" : ""));
            VerifyReport report;
            try {
                report = repo.verify(new VerifyOptions(List.copyOf(ids), samplePercent, repair));
            } catch (Exception e) {
                repo.finishRun(run, "failed", e.getMessage());
                throw e;
            }
            String summary = Human.count(report.chunksChecked(), "chunk") + " checked, "
                + report.damagedChunks().size() + " damaged, "
                + Human.count(report.damagedIndexes().size(), "damaged index", "damaged indexes") + ", "
                + Human.count(report.damagedPacks().size(), "damaged pack footer");
            repo.finishRun(run, report.ok() ? "ok" : "damaged", summary);
            if (json.enabled()) {
                json.print(report, report.ok() ? "ok" : "damaged");
            } else if (!report.ok() || !logging.quiet) { // damage is always reported
                print(report, repo);
            }
            return report.ok() ? ExitCodes.OK : ExitCodes.DAMAGE;
        }
    }

    private void print(VerifyReport r, Repository repo) {
        PrintWriter out = spec.commandLine().getOut();
        out.printf("Checked %s (%s) used by %s in %s.%n", Human.count(r.chunksChecked(), "chunk"),
            Sizes.format(r.bytesChecked()), Human.count(r.backupsChecked(), "backup"), repo.location());
        for (VerifyReport.DamagedChunk c : r.damagedChunks()) {
            out.printf("DAMAGED chunk %s%s: %s%n", c.digest(),
                c.pack() == null ? "" : " in pack " + c.pack() + " at offset " + c.packOffset(), c.problem());
            for (VerifyReport.Use u : c.uses()) {
                out.printf("  used by backup %s (%s) at disk offset %d%n", u.backupId(), u.disk(), u.diskOffset());
            }
            if (c.useCount() > c.uses().size()) {
                out.printf("  ... and %s%n", Human.count(c.useCount() - c.uses().size(), "more use"));
            }
            if (c.useCount() == 0) {
                out.printf("  used by no backup (a later backup that meets its data would reuse it)%n");
            }
        }
        for (VerifyReport.DamagedIndex d : r.damagedIndexes()) {
            out.printf("DAMAGED index of backup %s: %s%n", d.backupId(), d.problem());
        }
        for (VerifyReport.DamagedPack p : r.damagedPacks()) {
            out.printf("DAMAGED pack footer %s: %s%n  its records were checked one by one above; no backup loses data "
                + "through the footer alone%n", p.pack(), p.problem());
        }
        if (r.packsRewritten() > 0) {
            out.printf("Copied the intact records of %d packs with a damaged footer into new packs.%n",
                r.packsRewritten());
        }
        for (String id : r.backupsMarkedBad()) {
            out.printf("Marked backup %s bad.%n", id);
        }
        if (r.chunksForgotten() > 0) {
            out.printf("%d damaged chunks are no longer used for deduplication: the next backup that reads their "
                + "data stores them again, which heals every backup that uses them.%n", r.chunksForgotten());
        }
        if (r.ok()) {
            out.printf("No damage found.%n");
        } else {
            Set<String> affected = new LinkedHashSet<>();
            r.damagedChunks().forEach(c -> c.uses().forEach(u -> affected.add(u.backupId())));
            r.damagedIndexes().forEach(d -> affected.add(d.backupId()));
            out.printf("Damage found: %d chunks, %d indexes, %d pack footers; %d backups affected.%s%n",
                r.damagedChunks().size(), r.damagedIndexes().size(), r.damagedPacks().size(), affected.size(),
                r.backupsMarkedBad().isEmpty() && r.packsRewritten() == 0
                    ? " Run again with --repair to mark them bad and rewrite damaged pack footers." : "");
        }
        out.flush();
    }

}
