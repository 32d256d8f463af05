/*
 * ipc_frame_fuzz.c - libFuzzer target for the IPCFrame stream decoder: the
 * first input byte picks how the rest is cut into receive chunks, so split
 * handling is fuzzed along with the frame contents. Decoded frames are
 * re-encoded; the decoder must then agree with a direct protobuf-c unpack
 * of those bytes, and a frame that decodes must re-encode to them again.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/ipc_frame.h"
#include "common/log.h"

static void quiet(enum tb_log_level level, const char *msg, void *ctx)
{
}

static void roundtrip(const Perfetto__Protos__IPCFrame *f)
{
    Perfetto__Protos__IPCFrame *again, *direct;
    struct tb_ipc_frame_decoder_stats st;
    struct tb_ipc_frame_decoder *d;
    uint8_t *enc, *enc2;
    size_t len, len2;

    if (tb_ipc_frame_encode(f, 0, &enc, &len))
        return; /* unknown fields can make re-encoding larger than the limit */
    if (tb_ipc_frame_decoder_new(0, &d))
        abort();
    if (tb_ipc_frame_decoder_feed(d, enc, len))
        abort();
    again = tb_ipc_frame_decoder_pop(d);
    /*
     * protobuf-c keeps an unknown field numbered 0 when its tag came in a
     * padded varint (80 00) but refuses the 1-byte tag it writes back, so a
     * hostile frame may decode once and not again. The decoder must then
     * drop and count it, exactly where protobuf-c refuses the bytes.
     */
    direct = perfetto__protos__ipcframe__unpack(NULL, len - TB_IPC_FRAME_HEADER_SIZE,
                                                enc + TB_IPC_FRAME_HEADER_SIZE);
    tb_ipc_frame_decoder_get_stats(d, &st);
    if (!again != !direct || st.frames_dropped != (again ? 0u : 1u))
        abort();
    if (again) {
        if (tb_ipc_frame_encode(again, 0, &enc2, &len2))
            abort();
        if (len2 != len || memcmp(enc, enc2, len))
            abort();
        free(enc2);
    }
    free(enc);
    tb_ipc_frame_free(direct);
    tb_ipc_frame_free(again);
    tb_ipc_frame_decoder_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tb_ipc_frame_decoder *d;
    Perfetto__Protos__IPCFrame *f;
    size_t chunk, off = 1;

    if (size < 1)
        return 0;
    tb_log_set_sink(quiet, NULL);
    chunk = (size_t)data[0] + 1;
    /* A small limit on odd seeds reaches the oversize path cheaply. */
    if (tb_ipc_frame_decoder_new(data[0] & 1 ? 256 : 0, &d))
        abort();
    while (off < size) {
        size_t n = size - off < chunk ? size - off : chunk;

        if (tb_ipc_frame_decoder_feed(d, data + off, n))
            break;
        off += n;
        while ((f = tb_ipc_frame_decoder_pop(d))) {
            roundtrip(f);
            tb_ipc_frame_free(f);
        }
    }
    while ((f = tb_ipc_frame_decoder_pop(d)))
        tb_ipc_frame_free(f);
    tb_ipc_frame_decoder_free(d);
    return 0;
}
