package io.jbackup.cli;

import io.jbackup.error.UsageException;
import io.jbackup.nbd.client.ClientOptions;
import io.jbackup.nbd.client.ExportInfo;
import io.jbackup.nbd.client.Extents;
import io.jbackup.nbd.client.NbdClient;
import io.jbackup.nbd.client.NbdUri;
import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdHeaderMode;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code jbackup inspect}: what an NBD export offers (size, flags, block sizes, meta contexts) and, with
 * {@code --map}, its extent maps in {@code nbdinfo --map} format.
 */
@Command(name = "inspect",
    description = {
        "Show an NBD export: size, transmission flags, block sizes and the meta contexts it offers.",
        "With --map CONTEXT, print that context's extent map instead, in the format of nbdinfo --map.",
        "URI forms: nbd://HOST[:PORT]/EXPORT, nbds://..., nbd+unix:///EXPORT?socket=PATH, nbds+unix://..."},
    mixinStandardHelpOptions = true,
    sortOptions = false)
public final class InspectCommand implements Callable<Integer> {
    @Parameters(arity = "0..1", paramLabel = "URI", description = "The NBD export (not with --demo).")
    String uriText;

    @Option(names = "--map", paramLabel = "CONTEXT",
        description = "Print the extent map of a meta context (repeatable), e.g. base:allocation, "
            + "qemu:allocation-depth, qemu:dirty-bitmap:NAME.")
    List<String> maps = new ArrayList<>();

    @Option(names = "--list", description = "List the server's exports (NBD_OPT_LIST) instead.")
    boolean list;

    @Option(names = "--demo", description = "Build a demo qcow2 (backing file, dirty bitmap), serve it with qemu-nbd, "
        + "inspect it with the maps of all three contexts, and clean up.")
    boolean demo;

    @Mixin
    JsonMixin json;

    @Mixin
    TlsOptions tls;

    @Mixin
    LoggingMixin logging;

    @Override
    public Integer call() throws IOException {
        if (demo) {
            if (uriText != null || list) {
                throw new UsageException("--demo takes no URI and no --list");
            }
            return runDemo();
        }
        if (uriText == null) {
            throw new UsageException("give the NBD URI to inspect (or --demo)");
        }
        NbdUri uri = NbdUri.parse(uriText);
        ClientOptions opts = ClientOptions.defaults().withTls(tls.toConfig(uri.tls()));
        if (list) {
            if (!maps.isEmpty()) {
                throw new UsageException("--list and --map cannot be combined");
            }
            printList(NbdClient.listExports(uri, opts));
            return ExitCodes.OK;
        }
        Report r = inspect(uri, opts, maps, maps.isEmpty());
        if (json.enabled()) {
            json.print(r.toJson(maps.isEmpty()));
        } else if (maps.isEmpty()) {
            System.out.print(r.infoText());
        } else {
            System.out.print(r.mapsText(maps.size() > 1));
        }
        System.out.flush();
        return ExitCodes.OK;
    }

    private int runDemo() throws IOException {
        try (DemoImage d = DemoImage.start()) {
            List<String> all = List.of(NbdConstants.CONTEXT_BASE_ALLOCATION, NbdConstants.CONTEXT_ALLOCATION_DEPTH,
                NbdConstants.CONTEXT_DIRTY_BITMAP_PREFIX + DemoImage.BITMAP);
            Report r = inspect(d.uri(), ClientOptions.defaults(), all, true);
            if (json.enabled()) {
                json.print(r.toJson(true));
            } else {
                PrintStream out = System.out;
                out.print(DemoImage.description());
                out.println();
                out.print(r.infoText());
                out.println();
                out.print(r.mapsText(true));
            }
            System.out.flush();
        }
        if (!json.enabled()) {
            System.out.println();
            System.out.println("The demo's qemu-nbd is stopped and its files are removed. On your own image:");
            System.out.println("  qemu-nbd -r -t -f qcow2 -B BITMAP -A -k /tmp/nbd.sock DISK.qcow2 &");
            System.out.println("  jbackup inspect --map qemu:dirty-bitmap:BITMAP 'nbd+unix:///?socket=/tmp/nbd.sock'");
            System.out.flush();
        }
        return ExitCodes.OK;
    }

    /** Everything inspect prints. */
    record Report(NbdUri uri, ExportInfo info, boolean structured, NbdHeaderMode mode, boolean tls,
                  List<String> contexts, Map<String, List<Extent>> maps) {

        /** "extended headers", "structured replies" or "simple replies": what transmission uses. */
        String protocol() {
            return mode == NbdHeaderMode.EXTENDED ? "extended headers" : structured ? "structured replies"
                : "simple replies";
        }

        String infoText() {
            StringBuilder sb = new StringBuilder();
            sb.append(String.format("export:         \"%s\"%n", info.name()));
            if (!info.description().isEmpty()) {
                sb.append(String.format("description:    %s%n", info.description()));
            }
            sb.append(String.format("uri:            %s%n", uri));
            sb.append(String.format("size:           %d (%s)%n", info.size(), human(info.size())));
            sb.append(String.format("protocol:       %s%s%n", protocol(), tls ? ", TLS" : ""));
            sb.append(String.format("flags:          0x%04x %s%n", info.transmissionFlags(), info.flagNames()));
            sb.append(String.format("block sizes:    minimum %d, preferred %d, maximum %d%n", info.minBlock(),
                info.preferredBlock(), info.maxBlock()));
            sb.append("meta contexts:");
            if (contexts.isEmpty()) {
                sb.append("  (none)");
            }
            sb.append(String.format("%n"));
            for (String c : contexts) {
                sb.append("  ").append(c).append(String.format("%n"));
            }
            return sb.toString();
        }

        String mapsText(boolean headers) {
            StringBuilder sb = new StringBuilder();
            for (Map.Entry<String, List<Extent>> e : maps.entrySet()) {
                if (headers) {
                    sb.append(sb.length() > 0 ? "\n" : "").append("map of ").append(e.getKey()).append(":\n");
                }
                sb.append(ExtentFormat.lines(e.getKey(), e.getValue()));
            }
            return sb.toString();
        }

        Map<String, Object> toJson(boolean withInfo) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("uri", uri.toString());
            m.put("export", info.name());
            if (withInfo) {
                m.put("description", info.description());
                m.put("size", info.size());
                m.put("transmissionFlags", info.transmissionFlags());
                m.put("flags", info.flagNames().isEmpty() ? List.of() : List.of(info.flagNames().split("\\|")));
                m.put("minBlock", info.minBlock());
                m.put("preferredBlock", info.preferredBlock());
                m.put("maxBlock", info.maxBlock());
                m.put("structuredReplies", structured);
                m.put("headerMode", mode.name().toLowerCase(java.util.Locale.ROOT));
                m.put("tls", tls);
                m.put("metaContexts", contexts);
            }
            if (!maps.isEmpty()) {
                Map<String, Object> mm = new LinkedHashMap<>();
                maps.forEach((ctx, list) -> mm.put(ctx, list.stream().map(x -> ExtentFormat.json(ctx, x)).toList()));
                m.put("maps", mm);
            }
            return m;
        }
    }

    /**
     * Connects and gathers the report: the contexts the server lists (no query, plus {@code qemu:dirty-bitmap:}) when
     * {@code listContexts}, and the full, coalesced map of each context in {@code mapContexts}.
     */
    static Report inspect(NbdUri uri, ClientOptions opts, List<String> mapContexts, boolean listContexts)
        throws IOException {
        List<String> contexts = new ArrayList<>();
        if (listContexts) {
            LinkedHashSet<String> names = new LinkedHashSet<>(NbdClient.listMetaContexts(uri, opts));
            names.addAll(NbdClient.listMetaContexts(uri, opts, NbdConstants.CONTEXT_DIRTY_BITMAP_PREFIX));
            contexts.addAll(names);
        }
        String missing = null;
        boolean structured;
        NbdHeaderMode mode;
        try (NbdClient c = NbdClient.connect(uri, opts.withMetaContexts(List.copyOf(new LinkedHashSet<>(
            mapContexts))))) {
            Map<String, List<Extent>> maps = new LinkedHashMap<>();
            for (String ctx : mapContexts) {
                if (!c.metaContexts().containsKey(ctx)) {
                    missing = ctx;
                    break;
                }
                maps.put(ctx, Extents.coalesce(Extents.map(c, ctx, 0, c.info().size())));
            }
            structured = c.structuredReplies();
            mode = c.headerMode();
            if (missing == null) {
                return new Report(uri, c.info(), structured, mode, opts.tls().enabled() || uri.tls(), contexts, maps);
            }
        }
        // a server may serve one client at a time (qemu-nbd's default): ask again only after closing
        if (!structured) {
            throw new UsageException("the server " + uri + " has no structured replies, so it offers no "
                + "meta contexts ('" + missing + "' requested)");
        }
        List<String> offered = new ArrayList<>(new LinkedHashSet<>(NbdClient.listMetaContexts(uri, opts)));
        throw new UsageException("the server does not offer meta context '" + missing + "' on " + uri
            + "; it offers: " + (offered.isEmpty() ? "none" : String.join(", ", offered)));
    }

    private void printList(List<ExportInfo> exports) {
        if (json.enabled()) {
            List<Map<String, Object>> l = new ArrayList<>();
            for (ExportInfo i : exports) {
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("export", i.name());
                m.put("description", i.description());
                m.put("size", i.size());
                m.put("transmissionFlags", i.transmissionFlags());
                m.put("minBlock", i.minBlock());
                m.put("preferredBlock", i.preferredBlock());
                m.put("maxBlock", i.maxBlock());
                l.add(m);
            }
            json.print(l);
            return;
        }
        PrintStream out = System.out;
        if (exports.isEmpty()) {
            out.println("(the server lists no exports)");
        }
        for (ExportInfo i : exports) {
            out.printf("export \"%s\"%s%n", i.name(), i.description().isEmpty() ? "" : " - " + i.description());
            out.printf("  size:        %s%n", i.size() < 0 ? "unknown (server has no NBD_OPT_INFO)"
                : i.size() + " (" + human(i.size()) + ")");
            out.printf("  flags:       0x%04x %s%n", i.transmissionFlags(), i.flagNames());
            out.printf("  block sizes: minimum %d, preferred %d, maximum %d%n", i.minBlock(), i.preferredBlock(),
                i.maxBlock());
        }
        out.flush();
    }

    static String human(long bytes) {
        String[] units = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
        double v = bytes;
        int u = 0;
        while (v >= 1024 && u < units.length - 1) {
            v /= 1024;
            u++;
        }
        return u == 0 ? bytes + " B" : (v == Math.floor(v) ? String.format("%.0f %s", v, units[u])
            : String.format("%.1f %s", v, units[u]));
    }
}
