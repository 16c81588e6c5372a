package io.jbackup.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import picocli.CommandLine.Option;

import java.io.PrintStream;

/** {@code --json}: print the command's result as one JSON document on standard output. */
public final class JsonMixin {
    /**
     * The shared mapper, made on first use: picocli instantiates this mixin for every command when it builds the
     * command line, and an eager mapper cost every run (even {@code --version}) about 460 Jackson classes.
     */
    private static final class Holder {
        static final ObjectMapper MAPPER = new ObjectMapper()
            .registerModule(new com.fasterxml.jackson.datatype.jsr310.JavaTimeModule())
            .disable(SerializationFeature.WRITE_DATES_AS_TIMESTAMPS)
            .disable(SerializationFeature.WRITE_DURATIONS_AS_TIMESTAMPS)
            .enable(SerializationFeature.INDENT_OUTPUT)
            .disable(SerializationFeature.FAIL_ON_EMPTY_BEANS);
    }

    /** Shared mapper for command output. */
    public static ObjectMapper mapper() {
        return Holder.MAPPER;
    }

    @Option(names = "--json", description = "Print machine-readable JSON on standard output.")
    boolean json;

    public boolean enabled() {
        return json;
    }

    /**
     * Writes {@code value} as JSON to standard output. An object without a {@code status} of its own gets
     * {@code "status": "ok"} as its first field, so every command's result says how it ended in the same place as
     * a failure's ({@link ErrorHandler}); an array (a listing) is printed as it is.
     */
    public void print(Object value) {
        print(value, "ok");
    }

    /** Writes {@code value} as JSON, with {@code status} as its first field unless it has one (see above). */
    public void print(Object value, String status) {
        PrintStream out = System.out;
        try {
            com.fasterxml.jackson.databind.JsonNode tree = mapper().valueToTree(value);
            if (tree instanceof com.fasterxml.jackson.databind.node.ObjectNode o && !o.has("status")) {
                com.fasterxml.jackson.databind.node.ObjectNode withStatus = mapper().createObjectNode();
                withStatus.put("status", status);
                withStatus.setAll(o);
                tree = withStatus;
            }
            out.println(mapper().writeValueAsString(tree));
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException("cannot render JSON output", e);
        }
        out.flush();
    }
}
