/*
 * textproto_field.h - how protobuf-c lays a field out in a message, as the
 * text-format parser (textproto.c) and printer (textproto_print.c) both
 * need it: storage size per type, type names for messages, and presence.
 * Internal to consumer/textproto*.c.
 */
#ifndef TB_CONSUMER_TEXTPROTO_FIELD_H
#define TB_CONSUMER_TEXTPROTO_FIELD_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * tb_tp_value_size() - bytes one value of type @t takes in a message (and
 * each element of a repeated field's array).
 */
size_t tb_tp_value_size(ProtobufCType t);

/* tb_tp_type_name() - the .proto spelling of @t ("uint32"). Static string. */
const char *tb_tp_type_name(ProtobufCType t);

/*
 * tb_tp_field_present() - whether non-repeated @f of @msg holds a value the
 * printer must write: for a oneof member, that it is the chosen one; a
 * required field always is.
 */
bool tb_tp_field_present(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f);

/*
 * tb_tp_field_taken() - whether a value for non-repeated @f was already
 * stored, so giving it again is an error: for a oneof member, whether any
 * member of its oneof is set. A required field counts only once stored
 * (messages and strings), so the first value is accepted.
 */
bool tb_tp_field_taken(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f);

#endif /* TB_CONSUMER_TEXTPROTO_FIELD_H */
