package io.jbackup.store;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jbackup.model.RepositoryException;

import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/** The JSON mapper for repository files, and small helpers to read and write maps. */
final class Json {
    static final ObjectMapper MAPPER = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT)
        .enable(SerializationFeature.ORDER_MAP_ENTRIES_BY_KEYS);

    private Json() {
    }

    static byte[] bytes(JsonNode n) {
        try {
            return MAPPER.writeValueAsBytes(n);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    static String string(Object o) {
        try {
            return MAPPER.writeValueAsString(o);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    static JsonNode parse(byte[] bytes, Path file) throws RepositoryException {
        return parse(bytes, file.toString());
    }

    /** {@link #parse(byte[], Path)} of an object named {@code what} ({@code s3://bucket/prefix/KEY}). */
    static JsonNode parse(byte[] bytes, String file) throws RepositoryException {
        try {
            JsonNode n = MAPPER.readTree(bytes);
            if (n == null || !n.isObject()) {
                throw new RepositoryException(file + " does not hold a JSON object");
            }
            return n;
        } catch (IOException e) {
            throw new RepositoryException(file + " is not valid JSON: " + e.getMessage(), e);
        }
    }

    static ObjectNode map(Map<String, String> m) {
        ObjectNode n = MAPPER.createObjectNode();
        new TreeMap<>(m).forEach(n::put);
        return n;
    }

    static Map<String, String> toMap(JsonNode n) {
        Map<String, String> m = new LinkedHashMap<>();
        if (n != null && n.isObject()) {
            n.fields().forEachRemaining(e -> m.put(e.getKey(), e.getValue().asText()));
        }
        return m;
    }

    static Map<String, String> parseMap(String json) {
        if (json == null || json.isEmpty()) {
            return Map.of();
        }
        try {
            return toMap(MAPPER.readTree(json));
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("bad JSON map in catalog: " + json, e);
        }
    }
}
