package io.jbackup.nbd.server;

import io.jbackup.nbd.protocol.NbdConstants;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The meta contexts an export offers and how the queries of {@code NBD_OPT_LIST_META_CONTEXT} and
 * {@code NBD_OPT_SET_META_CONTEXT} select them. Every export offers {@code base:allocation}, then the contexts of
 * {@link NbdExport#metaContexts()} whose name is {@code namespace:leaf} (both parts non-empty).
 *
 * <p>{@code LIST} with no query returns every context of the export; a query ending in {@code :} (for example
 * {@code base:}, {@code qemu:} or {@code qemu:dirty-bitmap:}) is a prefix wildcard in {@code LIST}; anything else
 * must match a context name exactly. {@code SET} selects exact matches only; other queries are ignored. Context ids
 * are the positions in the {@code SET} reply (0, 1, ...).
 */
final class MetaContexts {
    private MetaContexts() {
    }

    /** The contexts of {@code export} by name, {@code base:allocation} first. */
    static Map<String, ExtentSource> of(NbdExport export) {
        Map<String, ExtentSource> m = new LinkedHashMap<>();
        m.put(NbdConstants.CONTEXT_BASE_ALLOCATION, export::allocation);
        for (Map.Entry<String, ExtentSource> e : export.metaContexts().entrySet()) {
            String name = e.getKey();
            int colon = name.indexOf(':');
            if (colon > 0 && colon < name.length() - 1 && e.getValue() != null) {
                m.putIfAbsent(name, e.getValue());
            }
        }
        return m;
    }

    /** The names {@code queries} select from {@code available}, in reply order, each once. */
    static List<String> select(Map<String, ExtentSource> available, List<String> queries, boolean set) {
        List<String> result = new ArrayList<>();
        if (!set && queries.isEmpty()) {
            result.addAll(available.keySet());
        }
        for (String q : queries) {
            if (!set && q.endsWith(":")) {
                for (String name : available.keySet()) {
                    if (name.startsWith(q) && !result.contains(name)) {
                        result.add(name);
                    }
                }
            } else if (available.containsKey(q) && !result.contains(q)) {
                result.add(q);
            }
        }
        return result;
    }

    /** The contexts a transmission serves: the {@code selected} names (ids = positions) {@code export} still has. */
    static List<TransmissionHandler.Context> forTransmission(NbdExport export, List<String> selected) {
        List<TransmissionHandler.Context> contexts = new ArrayList<>();
        Map<String, ExtentSource> available = of(export);
        for (int i = 0; i < selected.size(); i++) {
            ExtentSource src = available.get(selected.get(i));
            if (src != null) {
                contexts.add(new TransmissionHandler.Context(i, selected.get(i), src));
            }
        }
        return contexts;
    }
}
