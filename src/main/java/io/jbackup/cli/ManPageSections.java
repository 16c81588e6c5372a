package io.jbackup.cli;

import io.jbackup.cli.ManualSections.Entry;
import io.jbackup.cli.ManualSections.Section;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Build step after picocli's man page generator ({@code mvn package}): writes the ENVIRONMENT, FILES and EXAMPLES
 * sections of {@link ManualSections} into each generated AsciiDoc page, where picocli leaves the (empty) footer, and
 * names the exit code section EXIT STATUS. Usage: {@code ManPageSections ADOC_DIR}.
 */
public final class ManPageSections {
    static final String FOOTER_START = "// tag::picocli-generated-man-section-footer[]";
    static final String FOOTER_END = "// end::picocli-generated-man-section-footer[]";

    private ManPageSections() {
    }

    /** Rewrites every {@code jbackup*.adoc} in {@code args[0]}. */
    public static void main(String[] args) throws IOException {
        if (args.length != 1) {
            System.err.println("usage: ManPageSections ADOC_DIR");
            System.exit(ExitCodes.USAGE);
        }
        Map<String, CommandSpec> specs = new HashMap<>();
        collect(JBackup.commandLine().getCommandSpec(), specs);
        int pages = 0;
        try (var files = Files.list(Path.of(args[0]))) {
            for (Path f : files.filter(p -> p.getFileName().toString().endsWith(".adoc")).sorted().toList()) {
                String name = f.getFileName().toString().replaceFirst("\\.adoc$", "");
                CommandSpec spec = specs.get(name);
                if (spec == null) {
                    throw new IllegalStateException(f + ": no command " + name.replace('-', ' '));
                }
                Files.writeString(f, finish(Files.readString(f, StandardCharsets.UTF_8), spec), StandardCharsets.UTF_8);
                pages++;
            }
        }
        if (pages != specs.size()) {
            throw new IllegalStateException(args[0] + ": " + pages + " pages for " + specs.size() + " commands");
        }
    }

    private static void collect(CommandSpec spec, Map<String, CommandSpec> specs) {
        if (spec.usageMessage().hidden() || specs.containsValue(spec)) {
            return;
        }
        specs.put(spec.qualifiedName("-"), spec);
        for (CommandLine sub : spec.subcommands().values()) {
            collect(sub.getCommandSpec(), specs);
        }
    }

    /** The page with the footer sections of {@code spec} in place of picocli's footer. */
    static String finish(String generated, CommandSpec spec) {
        // picocli writes the --help heading "%nExit status:%n" as "==  Exit status:"
        Matcher exitHeading = Pattern.compile("(?m)^==\\s+" + ManualSections.EXIT_STATUS + ":$").matcher(generated);
        if (!exitHeading.find()) {
            throw new IllegalStateException(spec.qualifiedName() + ": no exit status section in the page");
        }
        String adoc = exitHeading.replaceFirst("== " + ManualSections.EXIT_STATUS);
        int start = adoc.indexOf(FOOTER_START);
        int end = adoc.indexOf(FOOTER_END);
        if (start < 0 || end < start) {
            throw new IllegalStateException(spec.qualifiedName() + ": no picocli footer section in the page");
        }
        StringBuilder out = new StringBuilder(adoc.substring(0, start)).append(FOOTER_START).append('\n');
        for (Section s : ManualSections.footerSections(spec)) {
            out.append("== ").append(s.heading()).append("\n\n");
            for (Entry e : s.entries()) {
                if (s.heading().equals("Examples")) {
                    out.append(e.name()).append(":\n\n----\n").append(e.meaning()).append("\n----\n\n");
                } else {
                    out.append('*').append(e.name()).append("*::\n  ").append(e.meaning()).append("\n\n");
                }
            }
        }
        return out.append(adoc.substring(end)).toString();
    }
}
