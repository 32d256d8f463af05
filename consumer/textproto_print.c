/*
 * textproto_print.c - message -> text format, the inverse of textproto.c,
 * used by "tracebpf record --print-config". Output is stable (field-number
 * order) and parses back to an equal message.
 */
#include "consumer/textproto.h"
#include "consumer/textproto_field.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static void indent(FILE *out, int depth)
{
    fprintf(out, "%*s", depth * 2, "");
}

static void print_escaped(FILE *out, const uint8_t *s, size_t len)
{
    size_t i;

    fputc('"', out);
    for (i = 0; i < len; i++) {
        uint8_t c = s[i];

        switch (c) {
        case '\n':
            fputs("\\n", out);
            break;
        case '\t':
            fputs("\\t", out);
            break;
        case '\r':
            fputs("\\r", out);
            break;
        case '"':
            fputs("\\\"", out);
            break;
        case '\\':
            fputs("\\\\", out);
            break;
        default:
            /* Octal keeps bytes exact; UTF-8 above 0x7f is escaped too. */
            if (c < 0x20 || c >= 0x7f)
                fprintf(out, "\\%03o", c);
            else
                fputc(c, out);
        }
    }
    fputc('"', out);
}

static void print_double(FILE *out, double d, int digits)
{
    if (isnan(d))
        fputs("nan", out);
    else if (isinf(d))
        fputs(d < 0 ? "-inf" : "inf", out);
    else
        fprintf(out, "%.*g", digits, d);
}

static int print_message(const ProtobufCMessage *msg, FILE *out, int depth);

/* Prints one value of @f found at @p. */
static void print_value(const ProtobufCFieldDescriptor *f, const void *p, FILE *out, int depth)
{
    const ProtobufCEnumValue *ev;

    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        fprintf(out, "%" PRId32, *(const int32_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        fprintf(out, "%" PRIu32, *(const uint32_t *)p);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        fprintf(out, "%" PRId64, *(const int64_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        fprintf(out, "%" PRIu64, *(const uint64_t *)p);
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        print_double(out, *(const float *)p, 9);
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        print_double(out, *(const double *)p, 17);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        fputs(*(const protobuf_c_boolean *)p ? "true" : "false", out);
        break;
    case PROTOBUF_C_TYPE_ENUM:
        ev = protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int *)p);
        if (ev)
            fputs(ev->name, out);
        else
            fprintf(out, "%d", *(const int *)p);
        break;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)p;

        print_escaped(out, (const uint8_t *)(s ? s : ""), s ? strlen(s) : 0);
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;

        print_escaped(out, b->data, b->len);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        fputs("{\n", out);
        print_message(*(const ProtobufCMessage *const *)p, out, depth + 1);
        indent(out, depth);
        fputc('}', out);
        break;
    }
}

static int print_message(const ProtobufCMessage *msg, FILE *out, int depth)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    const char *base = (const char *)msg;
    unsigned i;
    size_t j;

    for (i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        const char *sep = f->type == PROTOBUF_C_TYPE_MESSAGE ? " " : ": ";

        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            const char *arr = *(const char *const *)(base + f->offset);

            for (j = 0; j < n; j++) {
                indent(out, depth);
                fprintf(out, "%s%s", f->name, sep);
                print_value(f, arr + j * tb_tp_value_size(f->type), out, depth);
                fputc('\n', out);
            }
            continue;
        }
        if (!tb_tp_field_present(msg, f))
            continue;
        indent(out, depth);
        fprintf(out, "%s%s", f->name, sep);
        print_value(f, base + f->offset, out, depth);
        fputc('\n', out);
    }
    return 0;
}

int tb_textproto_print(const ProtobufCMessage *msg, FILE *out)
{
    print_message(msg, out, 0);
    return ferror(out) ? -EIO : 0;
}
