package io.jbackup.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.HelpCommand;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

/** The top command: only shared options and the list of subcommands. */
@Command(name = "jbackup",
    scope = CommandLine.ScopeType.INHERIT, // version and help options reach every subcommand (and its man page)
    mixinStandardHelpOptions = true,
    versionProvider = VersionProvider.class,
    modelTransformer = ManualSections.class, // exit codes, environment, files, examples of every command
    description = "Incremental backup and restore of QEMU/KVM disks over NBD.",
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
    @Spec
    CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    /** Builds the configured command line (also used by tests). */
    public static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new JBackup());
        cl.setCaseInsensitiveEnumValuesAllowed(true);
        cl.setExitCodeExceptionMapper(new ExitCodes());
        ErrorHandler errors = new ErrorHandler();
        cl.setExecutionExceptionHandler(errors);
        cl.setParameterExceptionHandler(errors);
        return cl;
    }
}
