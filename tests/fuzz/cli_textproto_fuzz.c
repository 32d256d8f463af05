/*
 * cli_textproto_fuzz.c - the text-format parser on arbitrary bytes (a
 * config file is user input): parse a TraceConfig, and when it parses,
 * print it and check the printed text parses back.
 */
#include "consumer/textproto.h"
#include "perfetto/config/trace_config.pb-c.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ProtobufCMessage *m = NULL, *again = NULL;
    size_t tlen = 0;
    char err[256];
    char *text = NULL;
    FILE *f;

    if (tb_textproto_parse(&perfetto__protos__trace_config__descriptor, (const char *)data, size,
                           &m, err, sizeof(err)))
        return 0;
    f = open_memstream(&text, &tlen);
    tb_textproto_print(m, f);
    fclose(f);
    if (tb_textproto_parse(&perfetto__protos__trace_config__descriptor, text, tlen, &again, err,
                           sizeof(err)))
        abort(); /* the printer wrote something the parser rejects */
    tb_textproto_free(again);
    tb_textproto_free(m);
    free(text);
    return 0;
}
