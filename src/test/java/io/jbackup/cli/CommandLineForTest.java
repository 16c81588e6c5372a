package io.jbackup.cli;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The command line built for one subcommand behaves as the whole one for it: same help, options and codes. */
class CommandLineForTest {
    @Test
    void eachSubcommandAloneHasTheSameHelpAndOptionsAsInTheWholeTree() {
        CommandLine whole = JBackup.commandLine();
        List<String> checked = new ArrayList<>();
        for (Map.Entry<String, CommandLine> e : whole.getSubcommands().entrySet()) {
            String name = e.getKey();
            CommandLine lean = JBackup.commandLineFor(new String[] {name, "--help"});
            if (name.equals("help")) {
                assertEquals(whole.getSubcommands().keySet(), lean.getSubcommands().keySet(),
                    "help needs every subcommand");
                continue;
            }
            assertEquals(e.getValue().getCommandSpec().aliases().length + 1, lean.getSubcommands().size(),
                name + " alone (and its aliases): " + lean.getSubcommands().keySet());
            compare(e.getValue(), lean.getSubcommands().get(name), checked);
        }
        assertTrue(checked.contains("jbackup list") && checked.contains("jbackup key add"), checked.toString());
        assertTrue(checked.size() > 30, checked.toString());
    }

    private static void compare(CommandLine whole, CommandLine lean, List<String> checked) {
        String name = whole.getCommandSpec().qualifiedName(" ");
        assertEquals(name, lean.getCommandSpec().qualifiedName(" "));
        assertEquals(usage(whole), usage(lean), name + " --help");
        assertFalse(usage(lean).isBlank());
        assertEquals(whole.getCommandSpec().optionsMap().keySet(), lean.getCommandSpec().optionsMap().keySet(),
            name + " options (the inherited --help and --version included)");
        assertEquals(whole.getCommandSpec().exitCodeOnExecutionException(),
            lean.getCommandSpec().exitCodeOnExecutionException(), name);
        assertEquals(whole.getExitCodeExceptionMapper().getClass(), lean.getExitCodeExceptionMapper().getClass());
        assertEquals(whole.getExecutionExceptionHandler().getClass(), lean.getExecutionExceptionHandler().getClass());
        assertEquals(whole.isCaseInsensitiveEnumValuesAllowed(), lean.isCaseInsensitiveEnumValuesAllowed(), name);
        checked.add(name);
        assertEquals(whole.getSubcommands().keySet(), lean.getSubcommands().keySet(), name);
        for (String sub : whole.getSubcommands().keySet()) {
            compare(whole.getSubcommands().get(sub), lean.getSubcommands().get(sub), checked);
        }
    }

    private static String usage(CommandLine cl) {
        StringWriter w = new StringWriter();
        cl.usage(new PrintWriter(w), CommandLine.Help.Ansi.OFF);
        return w.toString();
    }

    @Test
    void anythingElseGetsTheWholeCommandLine() {
        int all = JBackup.commandLine().getSubcommands().size();
        for (String[] args : List.of(new String[0], new String[] {"--help"}, new String[] {"nosuch"},
            new String[] {"help", "list"}, new String[] {"-v", "list"})) {
            assertEquals(all, JBackup.commandLineFor(args).getSubcommands().size(), String.join(" ", args));
        }
        assertEquals(2, JBackup.commandLineFor(new String[] {"delete", "--help"}).getSubcommands().size(),
            "an alias finds its command (forget, alias delete)");
    }
}
