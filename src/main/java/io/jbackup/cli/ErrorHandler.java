package io.jbackup.cli;

import io.jbackup.error.ErrorText;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Reports a failed command: one line on standard error ({@code jbackup: error: ...}), the stack trace only at
 * debug level, and, when the command line has {@code --json}, one JSON object on standard output:
 * {@code {"status":"error","exitCode":N,"error":{"code":"...","message":"..."}}} (codes from {@link ExitCodes}).
 * Handles both failures while running a command and bad command lines (unknown option, missing value, ...).
 */
final class ErrorHandler implements CommandLine.IExecutionExceptionHandler, CommandLine.IParameterExceptionHandler {
    /** Made on first use: the handler is built for every run, and SLF4J's start-up (a service-loader scan of
     * every jar) is not needed by one that succeeds. */
    private static Logger log() {
        return LoggerFactory.getLogger(ErrorHandler.class);
    }

    @Override
    public int handleExecutionException(Exception ex, CommandLine cmd, CommandLine.ParseResult parseResult) {
        log().debug("stack trace", ex);
        ExitCodes.Failure f = ExitCodes.classify(ex);
        String msg = ErrorText.describe(ex);
        PrintWriter err = cmd.getErr();
        err.println("jbackup: error: " + msg);
        if (f.exitCode() == ExitCodes.INTERNAL) {
            err.println("jbackup: this looks like a bug; run again with -vv and report the output.");
        }
        err.flush();
        if (wantsJson(parseResult)) {
            printJson(cmd.getOut(), f, msg);
        }
        return f.exitCode();
    }

    @Override
    public int handleParseException(CommandLine.ParameterException ex, String[] args) {
        CommandLine cmd = ex.getCommandLine();
        ExitCodes.Failure f = ExitCodes.classify(ex);
        String msg = ErrorText.describe(ex);
        PrintWriter err = cmd.getErr();
        err.println("jbackup: error: " + msg);
        CommandLine.UnmatchedArgumentException.printSuggestions(ex, err);
        err.println("Run '" + cmd.getCommandSpec().qualifiedName() + " --help' for the options.");
        err.flush();
        if (hasJson(args)) {
            printJson(cmd.getOut(), f, msg);
        }
        return f.exitCode();
    }

    /** The {@code --json} error object for a failure. */
    static Map<String, Object> errorJson(ExitCodes.Failure f, String message) {
        Map<String, Object> error = new LinkedHashMap<>();
        error.put("code", f.code());
        error.put("message", message);
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("status", "error");
        m.put("exitCode", f.exitCode());
        m.put("error", error);
        return m;
    }

    private static void printJson(PrintWriter out, ExitCodes.Failure f, String message) {
        try {
            out.println(JsonMixin.mapper().writeValueAsString(errorJson(f, message)));
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            log().warn("cannot render the JSON error object", e);
        }
        out.flush();
    }

    /** Whether the command that ran (or one of its parents) was given {@code --json}. */
    private static boolean wantsJson(CommandLine.ParseResult pr) {
        for (CommandLine.ParseResult p = pr; p != null; p = p.subcommand()) {
            if (p.hasMatchedOption("--json")) {
                return true;
            }
        }
        return false;
    }

    /** Whether the raw arguments have {@code --json} (before a {@code --}), for command lines that did not parse. */
    private static boolean hasJson(String[] args) {
        for (String a : args) {
            if (a.equals("--")) {
                return false;
            }
            if (a.equals("--json")) {
                return true;
            }
        }
        return false;
    }
}
