package io.jbackup.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.HelpCommand;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

import java.util.List;

/** The top command: only shared options and the list of subcommands. */
@Command(name = "jbackup",
    scope = CommandLine.ScopeType.INHERIT, // version and help options reach every subcommand (and its man page)
    mixinStandardHelpOptions = true,
    versionProvider = VersionProvider.class,
    modelTransformer = ManualSections.class, // exit codes, environment, files, examples of every command
    description = JBackup.DESCRIPTION,
    subcommands = {
        HelpCommand.class,
        InitCommand.class,
        BackupCommands.Full.class,
        BackupCommands.Incremental.class,
        BackupCommands.Auto.class,
        RestoreCommand.class,
        ServeCommand.class,
        MountCommand.class,
        UmountCommand.class,
        FilesCommands.class,
        CommitOverlayCommand.class,
        InspectCommand.class,
        VerifyCommand.class,
        RepairCommand.class,
        KeyCommand.class,
        BitmapCommand.class,
        ListCommands.ListCommand.class,
        ListCommands.ShowCommand.class,
        ListCommands.StatsCommand.class,
        MaintenanceCommands.Prune.class,
        MaintenanceCommands.Protect.class,
        MaintenanceCommands.Unprotect.class,
        MaintenanceCommands.Forget.class,
        MaintenanceCommands.Gc.class,
        ScheduleCommands.RunDue.class,
        ScheduleCommands.Daemon.class,
        ScheduleCommands.Schedule.class,
        ScheduleCommands.Log.class,
        DemoCommand.class,
    })
public final class JBackup implements Runnable {
    static final String DESCRIPTION = "Incremental backup and restore of QEMU/KVM disks over NBD.";

    @Spec
    CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    /** Builds the configured command line with every subcommand (also used by tests). */
    public static CommandLine commandLine() {
        return configure(new CommandLine(new JBackup()));
    }

    /**
     * The command line that runs {@code args}: when {@code args[0]} names a subcommand (not {@code help}), one that
     * holds only that subcommand and behaves the same for it; else {@link #commandLine()}. Building picocli's model
     * of every subcommand (26 then) was about a third of the start-up of a short command such as {@code list}
     * (bench/README.md).
     */
    public static CommandLine commandLineFor(String[] args) {
        // picocli's default factory otherwise looks for groovy.lang.Closure, a class that is not there: a miss that
        // opens every jar of the class path on the main thread (45 ms of start-up)
        if (System.getProperty("picocli.disable.closures") == null) {
            System.setProperty("picocli.disable.closures", "true");
        }
        if (args.length > 0) {
            for (Class<?> c : JBackup.class.getAnnotation(Command.class).subcommands()) {
                Command a = c.getAnnotation(Command.class);
                if (c != HelpCommand.class && (a.name().equals(args[0]) || List.of(a.aliases()).contains(args[0]))) {
                    CommandLine cl = new CommandLine(new One());
                    cl.addSubcommand(c);
                    // exit codes, environment, files and examples, as the top command's transformer sets them
                    new ManualSections().transform(cl.getCommandSpec());
                    return configure(cl);
                }
            }
        }
        return commandLine();
    }

    private static CommandLine configure(CommandLine cl) {
        cl.setCaseInsensitiveEnumValuesAllowed(true);
        cl.setExitCodeExceptionMapper(new ExitCodes());
        ErrorHandler errors = new ErrorHandler();
        cl.setExecutionExceptionHandler(errors);
        cl.setParameterExceptionHandler(errors);
        return cl;
    }

    /** The top command of {@link #commandLineFor}: JBackup's own attributes, without its list of subcommands. */
    @Command(name = "jbackup",
        scope = CommandLine.ScopeType.INHERIT,
        mixinStandardHelpOptions = true,
        versionProvider = VersionProvider.class,
        description = DESCRIPTION)
    static final class One implements Runnable {
        @Spec
        CommandSpec spec;

        @Override
        public void run() {
            spec.commandLine().usage(System.out);
        }
    }
}
