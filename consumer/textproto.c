/*
 * textproto.c - the text-format parser: walks tokens against a protobuf-c
 * message descriptor and fills a message allocated the way
 * protobuf_c_message_free_unpacked() expects (malloc, default allocator).
 * The message is kept consistent at every step, so on any error the
 * partial result is simply freed whole.
 */
#include "consumer/textproto.h"
#include "consumer/textproto_field.h"
#include "consumer/textproto_lex.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_DEPTH 64

struct parser {
    struct tb_tp_lexer lx;
    struct tb_tp_tok cur;
    char *err;
    size_t errlen;
    int depth;
    bool failed;
};

union value {
    int32_t i32;
    int64_t i64;
    uint32_t u32;
    uint64_t u64;
    float f;
    double d;
    protobuf_c_boolean b;
    int e;
    char *s;
    ProtobufCBinaryData bin;
    ProtobufCMessage *m;
};

static int fail(struct parser *ps, const struct tb_tp_tok *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct parser *ps, const struct tb_tp_tok *at, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (ps->failed)
        return -EINVAL;
    ps->failed = true;
    n = snprintf(ps->err, ps->errlen, "%d:%d: ", at->line, at->col);
    if (n >= 0 && (size_t)n < ps->errlen) {
        va_start(ap, fmt);
        vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static void next(struct parser *ps)
{
    tb_tp_lex_next(&ps->lx, &ps->cur);
}

static bool is_punct(const struct tb_tp_tok *t, char c)
{
    return t->kind == TB_TP_PUNCT && t->punct == c;
}

static bool accept(struct parser *ps, char c)
{
    if (!is_punct(&ps->cur, c))
        return false;
    next(ps);
    return true;
}

static void free_value(const ProtobufCFieldDescriptor *f, union value *v)
{
    if (f->type == PROTOBUF_C_TYPE_STRING)
        free(v->s);
    else if (f->type == PROTOBUF_C_TYPE_BYTES)
        free(v->bin.data);
    else if (f->type == PROTOBUF_C_TYPE_MESSAGE)
        protobuf_c_message_free_unpacked(v->m, NULL);
}

/* Stores @v into @f of @msg, taking ownership of it (freed on failure). */
static int store(struct parser *ps, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
                 union value *v, const struct tb_tp_tok *at)
{
    size_t sz = tb_tp_value_size(f->type);
    char *base = (char *)msg;

    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t *n = (size_t *)(base + f->quantifier_offset);
        void **arr = (void **)(base + f->offset);
        char *na = realloc(*arr, (*n + 1) * sz);

        if (!na) {
            free_value(f, v);
            return -ENOMEM;
        }
        memcpy(na + *n * sz, v, sz);
        *arr = na;
        (*n)++;
        return 0;
    }
    if (tb_tp_field_taken(msg, f)) {
        uint32_t which = (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
                             ? *(const uint32_t *)(base + f->quantifier_offset)
                             : f->id;
        const ProtobufCFieldDescriptor *other =
            protobuf_c_message_descriptor_get_field(msg->descriptor, which);

        free_value(f, v);
        if (other && other != f)
            return fail(ps, at, "'%s' and '%s' are alternatives (oneof); give only one",
                        other->name, f->name);
        return fail(ps, at, "'%s' is not repeated but is given twice", f->name);
    }
    memcpy(base + f->offset, v, sz);
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        *(uint32_t *)(base + f->quantifier_offset) = f->id;
    else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset)
        *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
    return 0;
}

/* Copies a number token into @buf without its sign. */
static bool number_text(const struct tb_tp_tok *t, char *buf, size_t len, bool *neg)
{
    const char *s = t->start;
    size_t n = t->len;

    *neg = n && *s == '-';
    if (*neg) {
        s++;
        n--;
    }
    if (!n || n >= len)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return true;
}

static int parse_int(struct parser *ps, const ProtobufCFieldDescriptor *f, union value *v)
{
    const struct tb_tp_tok *t = &ps->cur;
    bool is64, is_signed, neg;
    char buf[64], *endp;
    unsigned long long mag;
    uint64_t lim;

    switch (f->type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        is64 = true, is_signed = true;
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        is64 = true, is_signed = false;
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        is64 = false, is_signed = false;
        break;
    default:
        is64 = false, is_signed = true;
        break;
    }
    if (t->kind != TB_TP_NUMBER || !number_text(t, buf, sizeof(buf), &neg) || buf[0] == '-' ||
        buf[0] == '+') {
        char d[40];
        return fail(ps, t, "expected an integer for '%s' (%s), got %s", f->name,
                    tb_tp_type_name(f->type), tb_tp_describe(t, d, sizeof(d)));
    }
    errno = 0;
    mag = strtoull(buf, &endp, 0);
    if (*endp || errno) {
        char d[40];
        return fail(ps, t, "%s is not a valid %s for '%s'", tb_tp_describe(t, d, sizeof(d)),
                    tb_tp_type_name(f->type), f->name);
    }
    if (is_signed)
        lim = (is64 ? (uint64_t)INT64_MAX : (uint64_t)INT32_MAX) + (neg ? 1 : 0);
    else
        lim = neg && mag ? 0 : (is64 ? UINT64_MAX : UINT32_MAX);
    if (mag > lim || (!is_signed && neg && mag)) {
        char d[40];
        return fail(ps, t, "%s is out of range for '%s' (%s)", tb_tp_describe(t, d, sizeof(d)),
                    f->name, tb_tp_type_name(f->type));
    }
    if (is64 && is_signed)
        v->i64 = neg ? (int64_t)(0 - (uint64_t)mag) : (int64_t)mag;
    else if (is64)
        v->u64 = mag;
    else if (is_signed)
        v->i32 = neg ? (int32_t)(0 - (uint32_t)mag) : (int32_t)mag;
    else
        v->u32 = (uint32_t)mag;
    return 0;
}

static int parse_float(struct parser *ps, const ProtobufCFieldDescriptor *f, union value *v)
{
    const struct tb_tp_tok *t = &ps->cur;
    char buf[64], *endp;
    bool neg = false;
    size_t n;
    double d;

    if ((t->kind != TB_TP_NUMBER && t->kind != TB_TP_IDENT) ||
        !number_text(t, buf, sizeof(buf), &neg))
        goto bad;
    n = strlen(buf);
    if (!strcasecmp(buf, "inf") || !strcasecmp(buf, "infinity")) {
        d = INFINITY;
    } else if (!strcasecmp(buf, "nan")) {
        d = NAN;
    } else {
        if (t->kind != TB_TP_NUMBER || buf[0] == '-' || buf[0] == '+')
            goto bad;
        if (n > 1 && (buf[n - 1] == 'f' || buf[n - 1] == 'F') && strncasecmp(buf, "0x", 2))
            buf[n - 1] = '\0';
        errno = 0;
        d = strtod(buf, &endp);
        if (*endp || errno == ERANGE)
            goto bad;
    }
    if (neg)
        d = -d;
    if (f->type == PROTOBUF_C_TYPE_FLOAT)
        v->f = (float)d;
    else
        v->d = d;
    return 0;
bad : {
    char desc[40];
    return fail(ps, t, "expected a number for '%s' (%s), got %s", f->name, tb_tp_type_name(f->type),
                tb_tp_describe(t, desc, sizeof(desc)));
}
}

static int parse_bool(struct parser *ps, const ProtobufCFieldDescriptor *f, union value *v)
{
    static const char *const yes[] = {"true", "True", "t", "1"};
    static const char *const no[] = {"false", "False", "f", "0"};
    const struct tb_tp_tok *t = &ps->cur;
    char d[40];
    size_t i;

    for (i = 0; i < 4 && (t->kind == TB_TP_IDENT || t->kind == TB_TP_NUMBER); i++) {
        if (t->len == strlen(yes[i]) && !memcmp(t->start, yes[i], t->len)) {
            v->b = 1;
            return 0;
        }
        if (t->len == strlen(no[i]) && !memcmp(t->start, no[i], t->len)) {
            v->b = 0;
            return 0;
        }
    }
    return fail(ps, t, "expected true or false for '%s', got %s", f->name,
                tb_tp_describe(t, d, sizeof(d)));
}

static int parse_enum(struct parser *ps, const ProtobufCFieldDescriptor *f, union value *v)
{
    const ProtobufCEnumDescriptor *ed = f->descriptor;
    const struct tb_tp_tok *t = &ps->cur;
    const ProtobufCEnumValue *ev = NULL;
    char name[128], d[40];

    if (t->kind == TB_TP_IDENT && t->len < sizeof(name)) {
        memcpy(name, t->start, t->len);
        name[t->len] = '\0';
        ev = protobuf_c_enum_descriptor_get_value_by_name(ed, name);
    } else if (t->kind == TB_TP_NUMBER) {
        ProtobufCFieldDescriptor as_int = *f;
        union value iv;

        as_int.type = PROTOBUF_C_TYPE_INT32;
        if (parse_int(ps, &as_int, &iv))
            return -EINVAL;
        ev = protobuf_c_enum_descriptor_get_value(ed, iv.i32);
    }
    if (!ev)
        return fail(ps, t, "unknown value %s for enum '%s' (%s); expected e.g. %s",
                    tb_tp_describe(t, d, sizeof(d)), f->name, ed->name,
                    ed->n_values ? ed->values[0].name : "?");
    v->e = ev->value;
    return 0;
}

static int parse_string(struct parser *ps, const ProtobufCFieldDescriptor *f, union value *v)
{
    size_t len = 0, cap = 0;
    char *buf = NULL, d[40];
    int err, col;

    if (ps->cur.kind != TB_TP_STRING) {
        if (ps->cur.kind == TB_TP_BAD && (*ps->cur.start == '"' || *ps->cur.start == '\''))
            return fail(ps, &ps->cur, "unterminated string for '%s'", f->name);
        return fail(ps, &ps->cur, "expected a quoted string for '%s', got %s", f->name,
                    tb_tp_describe(&ps->cur, d, sizeof(d)));
    }
    /* Adjacent literals join: "sched/" "sched_switch". */
    while (ps->cur.kind == TB_TP_STRING) {
        err = tb_tp_unquote(&ps->cur, &buf, &len, &cap, &col);
        if (err) {
            struct tb_tp_tok at = ps->cur;

            free(buf);
            at.col = col;
            return err == -ENOMEM ? err : fail(ps, &at, "bad escape sequence in string");
        }
        next(ps);
    }
    if (f->type == PROTOBUF_C_TYPE_BYTES) {
        v->bin.data = (uint8_t *)buf;
        v->bin.len = len;
    } else {
        v->s = buf;
    }
    return 0;
}

static int parse_body(struct parser *ps, ProtobufCMessage *msg, const struct tb_tp_tok *open,
                      const char *field_name);

static int parse_message(struct parser *ps, ProtobufCMessage *msg,
                         const ProtobufCFieldDescriptor *f)
{
    const ProtobufCMessageDescriptor *sub_desc = f->descriptor;
    struct tb_tp_tok open = ps->cur;
    ProtobufCMessage *sub;
    union value v;
    int err;

    if (!is_punct(&open, '{') && !is_punct(&open, '<')) {
        char d[40];
        return fail(ps, &open, "expected '{' after '%s', got %s", f->name,
                    tb_tp_describe(&open, d, sizeof(d)));
    }
    sub = calloc(1, sub_desc->sizeof_message);
    if (!sub)
        return -ENOMEM;
    protobuf_c_message_init(sub_desc, sub);
    v.m = sub;
    /* Stored first, so an error inside leaves it to the caller's free. */
    err = store(ps, msg, f, &v, &open);
    if (err)
        return err;
    next(ps);
    return parse_body(ps, sub, &open, f->name);
}

static int parse_one(struct parser *ps, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    struct tb_tp_tok at = ps->cur;
    union value v;
    int err;

    memset(&v, 0, sizeof(v));
    switch (f->type) {
    case PROTOBUF_C_TYPE_MESSAGE:
        return parse_message(ps, msg, f);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
        err = parse_string(ps, f, &v);
        return err ? err : store(ps, msg, f, &v, &at);
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        err = parse_float(ps, f, &v);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        err = parse_bool(ps, f, &v);
        break;
    case PROTOBUF_C_TYPE_ENUM:
        err = parse_enum(ps, f, &v);
        break;
    default:
        err = parse_int(ps, f, &v);
        break;
    }
    if (err)
        return err;
    next(ps);
    return store(ps, msg, f, &v, &at);
}

static int parse_list(struct parser *ps, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    struct tb_tp_tok open = ps->cur;
    char d[40];
    int err;

    if (f->label != PROTOBUF_C_LABEL_REPEATED)
        return fail(ps, &open, "'%s' is not repeated; a [list] needs a repeated field", f->name);
    next(ps);
    if (accept(ps, ']'))
        return 0;
    for (;;) {
        err = parse_one(ps, msg, f);
        if (err)
            return err;
        if (accept(ps, ']'))
            return 0;
        if (!accept(ps, ','))
            return fail(ps, &ps->cur,
                        "expected ',' or ']' in the list for '%s' (opened at %d:%d), got %s",
                        f->name, open.line, open.col, tb_tp_describe(&ps->cur, d, sizeof(d)));
    }
}

static int parse_field(struct parser *ps, ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    const ProtobufCFieldDescriptor *f;
    struct tb_tp_tok name = ps->cur;
    char buf[128], d[40];
    bool colon;
    int err;

    if (is_punct(&name, '['))
        return fail(ps, &name, "extensions and Any fields are not supported");
    if (name.kind != TB_TP_IDENT)
        return fail(ps, &name, "expected a field name in %s, got %s", desc->name,
                    tb_tp_describe(&name, d, sizeof(d)));
    if (name.len >= sizeof(buf))
        return fail(ps, &name, "field name too long");
    memcpy(buf, name.start, name.len);
    buf[name.len] = '\0';
    f = protobuf_c_message_descriptor_get_field_by_name(desc, buf);
    if (!f)
        return fail(ps, &name, "unknown field '%s' in %s", buf, desc->name);
    next(ps);
    colon = accept(ps, ':');
    if (!colon && f->type != PROTOBUF_C_TYPE_MESSAGE)
        return fail(ps, &ps->cur, "expected ':' after '%s', got %s", f->name,
                    tb_tp_describe(&ps->cur, d, sizeof(d)));
    if (is_punct(&ps->cur, '['))
        err = parse_list(ps, msg, f);
    else
        err = parse_one(ps, msg, f);
    if (err)
        return err;
    if (!accept(ps, ';'))
        accept(ps, ',');
    return 0;
}

static int parse_body(struct parser *ps, ProtobufCMessage *msg, const struct tb_tp_tok *open,
                      const char *field_name)
{
    char close = open ? (open->punct == '<' ? '>' : '}') : 0;
    char d[40];
    int err;

    if (++ps->depth > MAX_DEPTH)
        return fail(ps, open, "nesting deeper than %d blocks", MAX_DEPTH);
    for (;;) {
        if (close && accept(ps, close))
            break;
        if (ps->cur.kind == TB_TP_EOF) {
            if (close)
                return fail(ps, &ps->cur,
                            "expected '%c' to close '%s' opened at %d:%d, got end of input", close,
                            field_name, open->line, open->col);
            break;
        }
        if (is_punct(&ps->cur, '}') || is_punct(&ps->cur, '>'))
            return fail(ps, &ps->cur, "unexpected %s%s", tb_tp_describe(&ps->cur, d, sizeof(d)),
                        close ? " (the block is closed with the other bracket)"
                              : " (no block is open)");
        err = parse_field(ps, msg);
        if (err)
            return err;
    }
    ps->depth--;
    return 0;
}

int tb_textproto_parse(const ProtobufCMessageDescriptor *desc, const char *text, size_t len,
                       ProtobufCMessage **out, char *err, size_t errlen)
{
    struct parser ps = {.err = err, .errlen = errlen};
    ProtobufCMessage *msg;
    int ret;

    *out = NULL;
    if (errlen)
        err[0] = '\0';
    msg = calloc(1, desc->sizeof_message);
    if (!msg)
        return -ENOMEM;
    protobuf_c_message_init(desc, msg);
    tb_tp_lex_init(&ps.lx, text, len);
    next(&ps);
    ret = parse_body(&ps, msg, NULL, desc->name);
    if (ret) {
        if (ret == -ENOMEM && errlen)
            snprintf(err, errlen, "out of memory");
        protobuf_c_message_free_unpacked(msg, NULL);
        return ret;
    }
    *out = msg;
    return 0;
}

void tb_textproto_free(ProtobufCMessage *msg)
{
    if (msg)
        protobuf_c_message_free_unpacked(msg, NULL);
}
