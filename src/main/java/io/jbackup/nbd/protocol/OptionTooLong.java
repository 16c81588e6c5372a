package io.jbackup.nbd.protocol;


/**
 * An option whose declared length exceeds the decoder's {@code maxOptionLength}. The decoder emits this as soon as
 * it has read the header and then discards the {@code length} data bytes as they arrive, without buffering them,
 * so the following option can still be parsed.
 *
 * @param option the raw option code
 * @param length the declared data length (unsigned 32 bit)
 */
public record OptionTooLong(int option, long length) {
    public NbdOption type() {
        return NbdOption.valueOf(option);
    }
}
