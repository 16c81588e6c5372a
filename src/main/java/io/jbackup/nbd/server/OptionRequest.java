package io.jbackup.nbd.server;

import io.jbackup.nbd.protocol.NbdOption;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.DefaultByteBufHolder;

/**
 * One handshake option from the client: {@code IHAVEOPT(8) option(4) length(4) data(length)}, with the data
 * held as a retained slice. Decoded by {@link ServerOptionDecoder}; the receiver releases it.
 */
public final class OptionRequest extends DefaultByteBufHolder {
    private final int option;

    public OptionRequest(int option, ByteBuf data) {
        super(data);
        this.option = option;
    }

    /** The raw option code. */
    public int option() {
        return option;
    }

    /** The option as a value class (never throws, unknown codes included). */
    public NbdOption type() {
        return NbdOption.valueOf(option);
    }

    @Override
    public String toString() {
        return "OptionRequest(" + type() + ", " + content().readableBytes() + " bytes)";
    }
}
