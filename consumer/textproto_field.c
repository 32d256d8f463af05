/*
 * textproto_field.c - field layout facts of protobuf-c messages shared by
 * the text-format parser and printer (see textproto_field.h).
 */
#include "consumer/textproto_field.h"

#include <stdint.h>

size_t tb_tp_value_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    default:
        /* int32 family, float, enum (protobuf-c stores enums as int). */
        return 4;
    }
}

const char *tb_tp_type_name(ProtobufCType t)
{
    static const char *const names[] = {
        [PROTOBUF_C_TYPE_INT32] = "int32",       [PROTOBUF_C_TYPE_SINT32] = "sint32",
        [PROTOBUF_C_TYPE_SFIXED32] = "sfixed32", [PROTOBUF_C_TYPE_INT64] = "int64",
        [PROTOBUF_C_TYPE_SINT64] = "sint64",     [PROTOBUF_C_TYPE_SFIXED64] = "sfixed64",
        [PROTOBUF_C_TYPE_UINT32] = "uint32",     [PROTOBUF_C_TYPE_FIXED32] = "fixed32",
        [PROTOBUF_C_TYPE_UINT64] = "uint64",     [PROTOBUF_C_TYPE_FIXED64] = "fixed64",
        [PROTOBUF_C_TYPE_FLOAT] = "float",       [PROTOBUF_C_TYPE_DOUBLE] = "double",
        [PROTOBUF_C_TYPE_BOOL] = "bool",         [PROTOBUF_C_TYPE_ENUM] = "enum",
        [PROTOBUF_C_TYPE_STRING] = "string",     [PROTOBUF_C_TYPE_BYTES] = "bytes",
        [PROTOBUF_C_TYPE_MESSAGE] = "message",
    };
    return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

/* A pointer field (string, message) is set when it points at its own data. */
static bool pointer_set(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    const void *p = *(void *const *)((const char *)msg + f->offset);

    return p && p != f->default_value;
}

static bool has_flag(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    return f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
           *(const protobuf_c_boolean *)((const char *)msg + f->quantifier_offset);
}

static uint32_t oneof_case(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    return *(const uint32_t *)((const char *)msg + f->quantifier_offset);
}

bool tb_tp_field_present(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return oneof_case(msg, f) == f->id;
    if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE)
        return pointer_set(msg, f);
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset)
        return has_flag(msg, f);
    return f->label == PROTOBUF_C_LABEL_REQUIRED;
}

bool tb_tp_field_taken(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return oneof_case(msg, f) != 0;
    if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE)
        return pointer_set(msg, f);
    return has_flag(msg, f);
}
