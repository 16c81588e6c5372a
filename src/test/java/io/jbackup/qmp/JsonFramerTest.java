package io.jbackup.qmp;

import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class JsonFramerTest {
    private static final String STREAM = "{\"QMP\": {\"version\": {}, \"capabilities\": [\"oob\"]}}\r\n"
        + "{\"return\": {}, \"id\": \"a}\"}\r\n"
        + "  {\"event\": \"X\", \"data\": {\"desc\": \"brace } and quote \\\" and \\\\\", \"list\": [{}, []]}}\n"
        + "{\"return\": \"\\u00e9\\\\\"}";

    private static List<String> frame(JsonFramer f, byte[] in, int... splits) throws Exception {
        List<String> out = new ArrayList<>();
        int prev = 0;
        for (int s : splits) {
            f.feed(in, prev, s - prev, b -> out.add(new String(b, StandardCharsets.UTF_8)));
            prev = s;
        }
        f.feed(in, prev, in.length - prev, b -> out.add(new String(b, StandardCharsets.UTF_8)));
        return out;
    }

    @Test
    void objectsSplitAtEveryPositionComeOutWhole() throws Exception {
        byte[] in = STREAM.getBytes(StandardCharsets.UTF_8);
        List<String> whole = frame(new JsonFramer(1024, false), in);
        assertEquals(4, whole.size(), whole.toString());
        assertEquals("{\"return\": {}, \"id\": \"a}\"}", whole.get(1));
        assertTrue(whole.get(2).endsWith("[{}, []]}}"), whole.get(2));
        for (int i = 0; i <= in.length; i++) {
            for (int j = i; j <= in.length; j += 7) {
                assertEquals(whole, frame(new JsonFramer(1024, false), in, i, j), "split at " + i + ", " + j);
            }
        }
    }

    @Test
    void oversizedMessageIsRefusedBeforeItIsBuffered() throws Exception {
        JsonFramer f = new JsonFramer(16, false);
        List<String> out = new ArrayList<>();
        byte[] ok = "{\"a\": 1234567890}".getBytes(StandardCharsets.UTF_8); // 17 bytes
        QmpConnectionException e = assertThrows(QmpConnectionException.class,
            () -> f.feed(ok, 0, ok.length, b -> out.add(new String(b, StandardCharsets.UTF_8))));
        assertTrue(e.getMessage().contains("exceeds 16 bytes"), e.getMessage());
        byte[] fits = "{\"a\": 123456789}".getBytes(StandardCharsets.UTF_8); // 16 bytes
        new JsonFramer(16, false).feed(fits, 0, fits.length, b -> out.add(new String(b, StandardCharsets.UTF_8)));
        assertEquals(List.of("{\"a\": 123456789}"), out);
    }

    @Test
    void garbageBetweenQmpMessagesFailsTheStream() {
        byte[] in = "{}\r\nHTTP/1.1 400".getBytes(StandardCharsets.UTF_8);
        QmpConnectionException e = assertThrows(QmpConnectionException.class,
            () -> new JsonFramer(64, false).feed(in, 0, in.length, b -> { }));
        assertTrue(e.getMessage().contains("0x48"), e.getMessage());
    }

    @Test
    void guestAgentModeSkipsStaleOutputAndRestartsAtTheDelimiter() throws Exception {
        byte[] stale = "junk{\"return\": {\"partial".getBytes(StandardCharsets.UTF_8);
        byte[] fresh = "{\"return\": 42}\n".getBytes(StandardCharsets.UTF_8);
        byte[] in = new byte[stale.length + 1 + fresh.length];
        System.arraycopy(stale, 0, in, 0, stale.length);
        in[stale.length] = (byte) 0xFF;
        System.arraycopy(fresh, 0, in, stale.length + 1, fresh.length);
        for (int i = 0; i <= in.length; i++) {
            assertEquals(List.of("{\"return\": 42}"), frame(new JsonFramer(64, true), in, i), "split at " + i);
        }
    }
}
