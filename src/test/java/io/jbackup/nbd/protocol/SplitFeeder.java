package io.jbackup.nbd.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelHandler;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.util.ReferenceCountUtil;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Function;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Feeds bytes to a fresh decoder in every possible split and checks that the decoded messages never change. */
final class SplitFeeder {
    private SplitFeeder() {
    }

    /** Decodes {@code bytes} fed as the given pieces; {@code normalize} turns the output into comparable values. */
    static List<Object> decode(Supplier<ChannelHandler> decoder, byte[] bytes, int[] cuts,
                               Function<List<Object>, List<Object>> normalize) {
        EmbeddedChannel ch = new EmbeddedChannel(decoder.get());
        int prev = 0;
        for (int cut : cuts) {
            ch.writeInbound(Unpooled.wrappedBuffer(Arrays.copyOfRange(bytes, prev, cut)));
            prev = cut;
        }
        ch.writeInbound(Unpooled.wrappedBuffer(Arrays.copyOfRange(bytes, prev, bytes.length)));
        List<Object> out = new ArrayList<>();
        for (Object o; (o = ch.readInbound()) != null; ) {
            out.add(o);
        }
        List<Object> result = normalize.apply(out);
        out.forEach(ReferenceCountUtil::release);
        ch.finishAndReleaseAll();
        return result;
    }

    /**
     * Checks that feeding {@code bytes} in one piece, split in two at every position, split in three at every pair of
     * positions (for short inputs) and one byte at a time all give {@code expected}.
     */
    static void assertEverySplit(Supplier<ChannelHandler> decoder, byte[] bytes, List<Object> expected,
                                 Function<List<Object>, List<Object>> normalize) {
        assertEquals(expected, decode(decoder, bytes, new int[0], normalize), "whole");
        for (int i = 0; i <= bytes.length; i++) {
            assertEquals(expected, decode(decoder, bytes, new int[] {i}, normalize), "split at " + i);
        }
        if (bytes.length <= 200) {
            for (int i = 0; i <= bytes.length; i++) {
                for (int j = i; j <= bytes.length; j++) {
                    assertEquals(expected, decode(decoder, bytes, new int[] {i, j}, normalize),
                        "split at " + i + " and " + j);
                }
            }
        }
        int[] each = new int[bytes.length];
        for (int i = 0; i < each.length; i++) {
            each[i] = i;
        }
        assertEquals(expected, decode(decoder, bytes, each, normalize), "byte by byte");
    }

    static byte[] bytes(ByteBuf b) {
        byte[] a = new byte[b.readableBytes()];
        b.readBytes(a);
        b.release();
        return a;
    }
}
