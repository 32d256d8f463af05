/*
 * textproto.h - protobuf text format over protobuf-c descriptors, written
 * once and generically: any message type protoc-c generated (TraceConfig
 * first) can be parsed from text and printed back.
 *
 * Accepted syntax: "field: value" and "field { ... }" / "field < ... >" (the
 * ':' before a block is optional), repeated fields as repeated lines or
 * "[a, b]" lists, enums by name or number, true/false, integers (decimal,
 * 0x hex, 0 octal, negative), floats (incl. inf/nan), strings in "" or ''
 * with C escapes (\n \t \" \\ \xHH \ooo \uXXXX) and adjacent strings
 * concatenated, '#' comments, optional ';' or ',' after a field.
 * Not supported: extensions and Any ("[type.googleapis.com/...]").
 */
#ifndef TB_CONSUMER_TEXTPROTO_H
#define TB_CONSUMER_TEXTPROTO_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdio.h>

/*
 * tb_textproto_parse() - parse @len bytes of text format into a new
 * message of type @desc.
 * @desc:   message type, e.g. &perfetto__protos__trace_config__descriptor.
 * @text:   the text; need not be NUL-terminated.
 * @out:    receives the message on success (NULL on failure). Owned by the
 *          caller: free with tb_textproto_free() (the allocation is the
 *          default protobuf-c allocator's, so
 *          protobuf_c_message_free_unpacked(msg, NULL) works too).
 * @err:    receives "LINE:COL: what was wrong and what was expected" on
 *          failure (lines and columns count from 1; columns in bytes).
 * Return: 0, -EINVAL for a syntax or type error (see @err), -ENOMEM.
 * Context: any thread; no global state.
 */
int tb_textproto_parse(const ProtobufCMessageDescriptor *desc, const char *text, size_t len,
                       ProtobufCMessage **out, char *err, size_t errlen);

/*
 * tb_textproto_free() - free a message from tb_textproto_parse(). Accepts
 * NULL.
 */
void tb_textproto_free(ProtobufCMessage *msg);

/*
 * tb_textproto_print() - write @msg as text format to @out, one field a
 * line, nested blocks indented by two spaces, in field-number order. Enums
 * print by name, strings with escapes, so the output parses back to an equal
 * message.
 * Return: 0, or -EIO when writing failed.
 */
int tb_textproto_print(const ProtobufCMessage *msg, FILE *out);

#endif /* TB_CONSUMER_TEXTPROTO_H */
