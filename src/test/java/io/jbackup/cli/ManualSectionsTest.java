package io.jbackup.cli;

import io.jbackup.cli.ManualSections.Entry;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;
import picocli.codegen.docgen.manpage.ManPageGenerator;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every command's --help and man page have EXIT STATUS, ENVIRONMENT, FILES and EXAMPLES, from one source, and the
 * examples still parse.
 */
class ManualSectionsTest {
    private static List<CommandSpec> allCommands() {
        List<CommandSpec> all = new ArrayList<>();
        collect(JBackup.commandLine().getCommandSpec(), all);
        return all;
    }

    private static void collect(CommandSpec spec, List<CommandSpec> all) {
        if (!all.contains(spec)) {
            all.add(spec);
            spec.subcommands().values().forEach(sub -> collect(sub.getCommandSpec(), all));
        }
    }

    @Test
    void exitCodeTableNamesEveryExitCode() throws Exception {
        Map<Integer, String> constants = new TreeMap<>();
        for (Field f : ExitCodes.class.getFields()) {
            if (f.getType() == int.class && Modifier.isStatic(f.getModifiers())) {
                constants.put(f.getInt(null), f.getName());
            }
        }
        List<Integer> table = ExitCodes.TABLE.stream().map(Map.Entry::getKey).toList();
        assertEquals(new ArrayList<>(constants.keySet()), table, "ExitCodes.TABLE lists every code once, in order");
    }

    @Test
    void everyCommandsHelpEndsWithExitStatusEnvironmentFilesAndExamples() {
        Map<String, String> codes = new LinkedHashMap<>();
        ExitCodes.TABLE.forEach(e -> codes.put(String.valueOf(e.getKey()), e.getValue()));
        List<CommandSpec> all = allCommands();
        assertTrue(all.size() > 25, "the whole command tree: " + all.size());
        for (CommandSpec spec : all) {
            String help = spec.commandLine().getUsageMessage(CommandLine.Help.Ansi.OFF);
            for (String line : help.split("\n")) {
                assertTrue(line.length() <= 80, spec.qualifiedName() + " --help: a line over 80 columns: " + line);
            }
            String joined = help.replaceAll(" \\\\\n +", " "); // shell line continuations
            String name = spec.qualifiedName();
            assertEquals(codes, spec.usageMessage().exitCodeList(), name);
            int exit = help.indexOf("\nExit status:\n");
            int env = help.indexOf("\nEnvironment:\n");
            int files = help.indexOf("\nFiles:\n");
            int examples = help.indexOf("\nExamples:\n");
            assertTrue(exit > 0 && env > exit && files > env && examples > files, name + " --help:\n" + help);
            for (String var : List.of("JBACKUP_REPO", "JBACKUP_PASSPHRASE", "JBACKUP_OPTS", "/etc/jbackup/jobs.yaml")) {
                assertTrue(help.contains(var), name + " --help names " + var);
            }
            assertFalse(CommandExamples.of(name).isEmpty(), name + " has examples");
            for (Entry e : CommandExamples.of(name)) {
                assertTrue(joined.contains(e.meaning()), name + " --help shows " + e.meaning() + ":\n" + help);
            }
        }
    }

    @Test
    void everyExampleRunsTheCommandItDocumentsWithOptionsThatExist() {
        for (CommandSpec spec : allCommands()) {
            for (Entry e : CommandExamples.of(spec.qualifiedName())) {
                List<String> words = shellWords(e.meaning());
                assertEquals("jbackup", words.get(0), e.meaning());
                CommandLine.ParseResult r = JBackup.commandLine().parseArgs(words.subList(1, words.size())
                    .toArray(String[]::new));
                while (r.hasSubcommand()) {
                    r = r.subcommand();
                }
                String ran = r.commandSpec().qualifiedName();
                assertTrue(ran.equals(spec.qualifiedName()) || spec.subcommands().values().stream()
                    .anyMatch(s -> s.getCommandSpec().qualifiedName().equals(ran)),
                    spec.qualifiedName() + "'s example runs " + ran + ": " + e.meaning());
            }
        }
    }

    @Test
    void everyManPageHasTheFourSectionsAsTheBuildRendersIt() {
        for (CommandSpec spec : allCommands()) {
            StringWriter w = new StringWriter();
            try (PrintWriter pw = new PrintWriter(w)) {
                ManPageGenerator.writeSingleManPage(pw, spec);
            }
            String page = ManPageSections.finish(w.toString().replace("\r\n", "\n"), spec);
            int exit = page.indexOf("\n== Exit status\n");
            int env = page.indexOf("\n== Environment\n");
            int files = page.indexOf("\n== Files\n");
            int examples = page.indexOf("\n== Examples\n");
            assertTrue(exit > 0 && env > exit && files > env && examples > files, spec.qualifiedName() + ":\n" + page);
            assertTrue(page.contains("*JBACKUP_OPTS*::"), page);
            for (Entry e : CommandExamples.of(spec.qualifiedName())) {
                assertTrue(page.contains("----\n" + e.meaning() + "\n----"), e.meaning());
            }
        }
    }

    /** Splits a command line at spaces, with single-quoted words. */
    private static List<String> shellWords(String line) {
        List<String> words = new ArrayList<>();
        StringBuilder w = new StringBuilder();
        boolean quoted = false;
        for (char c : line.toCharArray()) {
            if (c == '\'') {
                quoted = !quoted;
            } else if (c == ' ' && !quoted) {
                if (!w.isEmpty()) {
                    words.add(w.toString());
                    w.setLength(0);
                }
            } else {
                w.append(c);
            }
        }
        if (!w.isEmpty()) {
            words.add(w.toString());
        }
        return words;
    }
}
