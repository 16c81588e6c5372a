package io.jbackup.cli;

import picocli.CommandLine.IVersionProvider;

import java.io.IOException;
import java.io.InputStream;
import java.util.Properties;

/**
 * Version from the jar manifest, else from {@code version.properties} (filtered by Maven at build time, so
 * classes run from {@code target/classes} and the generated man pages know it too), else "dev".
 */
public final class VersionProvider implements IVersionProvider {
    @Override
    public String[] getVersion() {
        return new String[] {"jbackup " + version(),
            "Java " + System.getProperty("java.version") + " (" + System.getProperty("java.vm.name") + ")"};
    }

    /** The version of this build. */
    public static String version() {
        String v = VersionProvider.class.getPackage().getImplementationVersion();
        if (v != null) {
            return v;
        }
        try (InputStream in = VersionProvider.class.getResourceAsStream("version.properties")) {
            if (in != null) {
                Properties p = new Properties();
                p.load(in);
                String s = p.getProperty("version");
                if (s != null && !s.startsWith("$")) {
                    return s;
                }
            }
        } catch (IOException e) {
            // fall through
        }
        return "dev";
    }
}
