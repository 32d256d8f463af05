/*
 * ftrace_encode.c - raw ftrace events into FtraceEvent (see
 * ftrace_encode.h). Field values come from libtraceevent, so the layout is
 * whatever this kernel's format file says.
 */
#include "producers/ftrace/ftrace_encode.h"

#include <string.h>

#include <event-parse.h>

#include "common/pb_writer.h"

#define FE_TIMESTAMP 1
#define FE_PID       2
#define FE_PRINT     3
#define FE_CPU_FREQ  11
#define FE_CPU_IDLE  13
#define FE_GENERIC   327

bool tb_ftrace_record_missed(const struct tep_record *rec)
{
    return rec->missed_events != 0;
}

static unsigned long long num(struct tep_event *ev, struct tep_record *rec, const char *name)
{
    unsigned long long v = 0;

    tep_get_field_val(NULL, ev, name, rec, &v, 0);
    return v;
}

static void put_str_field(struct tb_pbw *w, uint32_t field, struct tep_event *ev,
                          struct tep_record *rec, const char *name)
{
    const char *s;
    int len = 0;

    s = tep_get_field_raw(NULL, ev, name, rec, &len, 0);
    if (s && len <= 0) {
        /* A trailing "char buf[]" (size 0 in the format) runs to the record's end. */
        len = rec->size - (int)(s - (const char *)rec->data);
    }
    if (s && len > 0)
        tb_pbw_append_bytes(w, field, s, strnlen(s, len));
}

static bool is_string(const struct tep_format_field *f)
{
    return (f->flags & TEP_FIELD_IS_STRING) ||
           ((f->flags & TEP_FIELD_IS_ARRAY) && f->elementsize == 1 && strstr(f->type, "char"));
}

static void encode_generic(struct tb_pbw *w, struct tep_event *ev, struct tep_record *rec)
{
    struct tep_format_field *f;

    tb_pbw_begin_nested(w, FE_GENERIC);
    tb_pbw_append_string(w, 1, ev->name);
    for (f = ev->format.fields; f; f = f->next) {
        tb_pbw_begin_nested(w, 2);
        tb_pbw_append_string(w, 1, f->name);
        if (is_string(f)) {
            put_str_field(w, 3, ev, rec, f->name);
        } else if (f->flags & TEP_FIELD_IS_ARRAY) {
            /* Non-char arrays have no generic form: keep the name only. */
        } else {
            unsigned long long v = 0;

            tep_read_number_field(f, rec->data, &v);
            if (f->flags & TEP_FIELD_IS_SIGNED) {
                int64_t s = (int64_t)v;

                /* Sign-extend narrow fields: tep reads them unsigned. */
                if (f->size < 8 && (v & (1ull << (f->size * 8 - 1))))
                    s = (int64_t)(v | ~((1ull << (f->size * 8)) - 1));
                tb_pbw_append_int(w, 4, s);
            } else {
                tb_pbw_append_varint(w, 5, v);
            }
        }
        tb_pbw_end_nested(w);
    }
    tb_pbw_end_nested(w);
}

int tb_ftrace_encode_event(struct tb_pbw *w, uint32_t field, struct tep_event *ev,
                           struct tep_record *rec)
{
    tb_pbw_begin_nested(w, field);
    tb_pbw_append_varint(w, FE_TIMESTAMP, rec->ts);
    tb_pbw_append_varint(w, FE_PID, (uint32_t)tep_data_pid(ev->tep, rec));
    if (!strcmp(ev->system, "ftrace") && !strcmp(ev->name, "print")) {
        tb_pbw_begin_nested(w, FE_PRINT);
        tb_pbw_append_varint(w, 1, num(ev, rec, "ip"));
        put_str_field(w, 2, ev, rec, "buf");
        tb_pbw_end_nested(w);
    } else if (!strcmp(ev->system, "power") &&
               (!strcmp(ev->name, "cpu_frequency") || !strcmp(ev->name, "cpu_idle"))) {
        tb_pbw_begin_nested(w, !strcmp(ev->name, "cpu_idle") ? FE_CPU_IDLE : FE_CPU_FREQ);
        tb_pbw_append_varint(w, 1, (uint32_t)num(ev, rec, "state"));
        tb_pbw_append_varint(w, 2, (uint32_t)num(ev, rec, "cpu_id"));
        tb_pbw_end_nested(w);
    } else {
        encode_generic(w, ev, rec);
    }
    tb_pbw_end_nested(w);
    return tb_pbw_error(w);
}
