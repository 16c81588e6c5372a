package io.jbackup.cli;

import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.UsageMessageSpec;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The sections that end every command's {@code --help} and its man page: EXIT STATUS ({@link ExitCodes#TABLE}),
 * ENVIRONMENT, FILES and EXAMPLES ({@link CommandExamples}). A model transformer of the top command sets them on
 * every command, so {@code --help} and picocli's man page generator read them from the same command spec;
 * {@link ManPageSections} turns the footer into man page sections.
 */
public final class ManualSections implements CommandLine.IModelTransformer {
    /** A name (environment variable, file) and what it means. */
    public record Entry(String name, String meaning) {}

    /** A section: heading and entries (for EXAMPLES, name = what it does, meaning = the command line). */
    public record Section(String heading, List<Entry> entries) {}

    static final String EXIT_STATUS = "Exit status";

    static final List<Entry> ENVIRONMENT = List.of(
        new Entry("JBACKUP_REPO", "The repository directory when --repo is not given."),
        new Entry("JBACKUP_PASSPHRASE", "The passphrase of an encrypted repository when --passphrase-file "
            + "(or the job file's passphraseFile) is not given; without either, jbackup asks on the terminal."),
        new Entry("JBACKUP_OPTS", "JVM options of the launcher (default: -Xmx512m -XX:+UseParallelGC), e.g. "
            + "-XX:MaxDirectMemorySize=3g for serve --cache-size above ~400 MiB. In a systemd unit quote the whole "
            + "assignment: Environment=\"JBACKUP_OPTS=-Xmx512m -XX:+UseParallelGC\"."),
        new Entry("JBACKUP_CDS", "The launcher's class data sharing archive (JAR.jsa next to the jar, made by mvn "
            + "package and install.sh; it shortens start-up): auto (default) uses it when it is intact, off never, "
            + "dump makes it again (after a Java update)."),
        new Entry("JAVA, JAVA_HOME", "The java binary the launcher runs (JAVA), else JAVA_HOME/bin/java, else java "
            + "on the PATH; Java 17 or newer."),
        new Entry("LANG, LC_ALL, LC_CTYPE", "File names are bytes; Java reads them by the locale's character set. "
            + "When that is not UTF-8 (LANG=C or unset, as under cron and systemd), the launcher runs jbackup with "
            + "LC_ALL=C.UTF-8, so non-ASCII paths (a repository, a guest's files in files ls/get) work."),
        new Entry("TERM", "Progress bars appear only on a terminal, and not when TERM is dumb."));

    static final List<Entry> FILES = List.of(
        new Entry("REPO/", "The repository: config.json, catalog.db (SQLite), keys/, packs/, indexes/, logs/ of "
            + "scheduled runs, overlays/ of serve --writable; see docs/repository-format.md."),
        new Entry("/etc/jbackup/jobs.yaml", "The job file of run-due, daemon, schedule and log (--config): "
            + "disks, schedules, retention, verify and gc; see examples/jobs.yaml."),
        new Entry("/etc/jbackup/passphrase", "The passphrase of an encrypted repository for scheduled runs "
            + "(the job file's passphraseFile; mode 0600)."),
        new Entry("PREFIX/lib/systemd/system/", "jbackup.service and jbackup.timer (run-due every five minutes), "
            + "or jbackup-daemon.service, installed by install.sh."),
        new Entry("/run/jbackup/mounts/", "The state of each running mount (a directory per mount point: its NBD "
            + "socket, nbdfuse files and state.json), which umount and the next mount use to clean up after a killed "
            + "one; files mounts under /run/jbackup/files/. See docs/file-restore.md."),
        new Entry("PREFIX/share/doc/jbackup/", "README.md, docs/ (operations, troubleshooting, formats) and "
            + "examples/."));

    @Override
    public CommandSpec transform(CommandSpec spec) {
        apply(spec);
        return spec;
    }

    private static void apply(CommandSpec spec) {
        UsageMessageSpec usage = spec.usageMessage();
        Map<String, String> codes = new LinkedHashMap<>();
        for (Map.Entry<Integer, String> e : ExitCodes.TABLE) {
            codes.put(String.valueOf(e.getKey()), escape(e.getValue()));
        }
        usage.exitCodeListHeading("%n" + EXIT_STATUS + ":%n");
        usage.exitCodeList(codes);
        usage.footerHeading("");
        usage.footer(helpText(footerSections(spec)).toArray(String[]::new));
        for (CommandLine sub : spec.subcommands().values()) {
            if (sub.getCommandSpec() != spec) {
                apply(sub.getCommandSpec());
            }
        }
    }

    /** ENVIRONMENT, FILES and EXAMPLES of a command. */
    public static List<Section> footerSections(CommandSpec spec) {
        return List.of(new Section("Environment", ENVIRONMENT), new Section("Files", FILES),
            new Section("Examples", CommandExamples.of(spec.qualifiedName(" "))));
    }

    /** The sections as --help lines (picocli format strings: % escaped), wrapped to 80 columns. */
    static List<String> helpText(List<Section> sections) {
        List<String> lines = new ArrayList<>();
        for (Section s : sections) {
            lines.add("");
            lines.add(s.heading() + ":");
            boolean examples = s.heading().equals("Examples");
            for (Entry e : s.entries()) {
                if (examples) {
                    wrap(lines, "  # ", e.name() + ":", "  # ");
                    commandLines(lines, e.meaning());
                } else {
                    lines.add(escape("  " + e.name()));
                    wrap(lines, "      ", e.meaning(), "      ");
                }
            }
        }
        return lines;
    }

    /** A command line in lines of at most 80 columns, continued with backslashes before an option. */
    private static void commandLines(List<String> lines, String command) {
        StringBuilder line = new StringBuilder("  ");
        for (String group : command.split(" (?=-)")) {
            if (line.length() > 2 && line.length() + 1 + group.length() + 2 > 80) {
                lines.add(escape(line.append(" \\").toString()));
                line = new StringBuilder("      ");
            } else if (line.length() > 2) {
                line.append(' ');
            }
            line.append(group);
        }
        lines.add(escape(line.toString()));
    }

    private static void wrap(List<String> lines, String first, String text, String next) {
        StringBuilder line = new StringBuilder(first);
        int start = first.length();
        for (String word : text.split(" ")) {
            if (line.length() > start && line.length() + 1 + word.length() > 80) {
                lines.add(escape(line.toString()));
                line = new StringBuilder(next);
                start = next.length();
            }
            if (line.length() > start) {
                line.append(' ');
            }
            line.append(word);
        }
        lines.add(escape(line.toString()));
    }

    private static String escape(String s) {
        return s.replace("%", "%%");
    }
}
