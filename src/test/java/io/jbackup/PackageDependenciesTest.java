package io.jbackup;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The package structure of the main sources: no cycle among {@code io.jbackup} packages, and the catalog and the
 * model stay leaves below the store (docs/architecture.md). Dependencies are read from the sources: imports and
 * fully-qualified uses ({@code io.jbackup.store.FilePermissions.restrict(..)}, javadoc links included).
 */
class PackageDependenciesTest {
    private static final Path MAIN = Path.of("src/main/java");
    private static final Pattern PACKAGE = Pattern.compile("^package\\s+([\\w.]+)\\s*;", Pattern.MULTILINE);
    /** A qualified name {@code io.jbackup.pkg.sub.Type}: the package is everything before the first capital. */
    private static final Pattern USE = Pattern.compile("\\bio\\.jbackup((?:\\.[a-z][a-z0-9_]*)+)\\.[A-Z*]");

    private static final Pattern CODE_SPAN = Pattern.compile("\\{@code[^}]*}");

    /** Package → packages of ours it uses (itself excluded). */
    static Map<String, Set<String>> graph() throws IOException {
        Map<String, Set<String>> g = new TreeMap<>();
        try (Stream<Path> files = Files.walk(MAIN)) {
            for (Path f : files.filter(p -> p.toString().endsWith(".java")).toList()) {
                // {@code ...} in a comment is prose, not a use; {@link ...} is (javadoc resolves it)
                String src = CODE_SPAN.matcher(Files.readString(f)).replaceAll("");
                Matcher pm = PACKAGE.matcher(src);
                assertTrue(pm.find(), f + " declares no package");
                String pkg = pm.group(1);
                Set<String> uses = g.computeIfAbsent(pkg, k -> new TreeSet<>());
                Matcher m = USE.matcher(src);
                while (m.find()) {
                    String used = "io.jbackup" + m.group(1);
                    if (!used.equals(pkg)) {
                        uses.add(used);
                    }
                }
            }
        }
        return g;
    }

    @Test
    void noCycleAmongPackages() throws IOException {
        Map<String, Set<String>> g = graph();
        assertTrue(g.size() > 10, "found the packages: " + g.keySet());
        List<Set<String>> cycles = new ArrayList<>();
        for (Set<String> scc : stronglyConnected(g)) {
            if (scc.size() > 1) {
                cycles.add(scc);
            }
        }
        StringBuilder why = new StringBuilder();
        for (Set<String> c : cycles) {
            why.append("\n  cycle among ").append(c).append(':');
            for (String p : c) {
                for (String q : g.get(p)) {
                    if (c.contains(q)) {
                        why.append("\n    ").append(p).append(" -> ").append(q);
                    }
                }
            }
        }
        assertEquals(List.of(), cycles, "package cycles:" + why);
    }

    @Test
    void catalogUsesOnlyTheModelAndTheLeaves() throws IOException {
        Map<String, Set<String>> g = graph();
        Set<String> leaves = Set.of("io.jbackup.error", "io.jbackup.text");
        assertTrue(g.containsKey("io.jbackup.model"), "the package io.jbackup.model exists");
        for (String p : g.get("io.jbackup.model")) {
            assertTrue(leaves.contains(p), "io.jbackup.model uses " + p + "; it may use only " + leaves);
        }
        for (String p : g.get("io.jbackup.catalog")) {
            assertTrue(p.equals("io.jbackup.model") || leaves.contains(p),
                "io.jbackup.catalog uses " + p + "; it may use only io.jbackup.model and " + leaves);
        }
        for (String leaf : leaves) {
            assertEquals(Set.of(), g.getOrDefault(leaf, Set.of()), leaf + " is a leaf");
        }
    }

    /** Tarjan's strongly connected components of {@code g}. */
    private static List<Set<String>> stronglyConnected(Map<String, Set<String>> g) {
        Map<String, Integer> index = new HashMap<>();
        Map<String, Integer> low = new HashMap<>();
        Deque<String> stack = new ArrayDeque<>();
        Set<String> onStack = new TreeSet<>();
        List<Set<String>> out = new ArrayList<>();
        int[] next = {0};
        for (String v : g.keySet()) {
            if (!index.containsKey(v)) {
                connect(v, g, index, low, stack, onStack, out, next);
            }
        }
        return out;
    }

    private static void connect(String v, Map<String, Set<String>> g, Map<String, Integer> index,
                                Map<String, Integer> low, Deque<String> stack, Set<String> onStack,
                                List<Set<String>> out, int[] next) {
        index.put(v, next[0]);
        low.put(v, next[0]);
        next[0]++;
        stack.push(v);
        onStack.add(v);
        for (String w : g.getOrDefault(v, Set.of())) {
            if (!index.containsKey(w)) {
                connect(w, g, index, low, stack, onStack, out, next);
                low.put(v, Math.min(low.get(v), low.get(w)));
            } else if (onStack.contains(w)) {
                low.put(v, Math.min(low.get(v), index.get(w)));
            }
        }
        if (low.get(v).equals(index.get(v))) {
            Set<String> scc = new TreeSet<>();
            String w;
            do {
                w = stack.pop();
                onStack.remove(w);
                scc.add(w);
            } while (!w.equals(v));
            out.add(scc);
        }
    }
}
