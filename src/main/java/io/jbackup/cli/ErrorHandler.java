package io.jbackup.cli;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine;

/**
 * Prints a failed command's error as one line on standard error ({@code jbackup: error: ...}), with the stack
 * trace only at debug level, and returns the exit code from {@link ExitCodes}.
 */
final class ErrorHandler implements CommandLine.IExecutionExceptionHandler {
    private static final Logger LOG = LoggerFactory.getLogger(ErrorHandler.class);

    @Override
    public int handleExecutionException(Exception ex, CommandLine cmd, CommandLine.ParseResult parseResult) {
        String msg = describe(ex);
        cmd.getErr().println("jbackup: error: " + msg);
        cmd.getErr().flush();
        LOG.debug("stack trace", ex);
        int code = ExitCodes.forException(ex);
        if (code == ExitCodes.INTERNAL) {
            cmd.getErr().println("jbackup: this looks like a bug; run again with -vv and report the output.");
        }
        return code;
    }

    /** The message of the exception and its distinct causes, joined with ": ". */
    static String describe(Throwable ex) {
        StringBuilder sb = new StringBuilder();
        String last = null;
        for (Throwable t = ex; t != null; t = t.getCause()) {
            String m = t.getMessage();
            if (m == null || m.isBlank()) {
                m = t.getClass().getSimpleName();
            }
            if (last != null && last.contains(m)) {
                continue;
            }
            if (sb.length() > 0) {
                sb.append(": ");
            }
            sb.append(m);
            last = m;
            if (t.getCause() == t) {
                break;
            }
        }
        return sb.toString();
    }
}
