/*
 * json_export.c - standalone mode's Chrome JSON output (TRACEBPF_OUTPUT
 * ending in ".json"): the recorded trace is decoded (te_decode.c) and each
 * track event becomes a JSON trace event: B/E slices, "i" instants, "C"
 * counters, flows as s/t/f events bound to the enclosing slice, and "M"
 * metadata naming processes and threads. Custom tracks show as extra
 * threads of the process named after the track. Times are microseconds of
 * CLOCK_BOOTTIME.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "producers/userspace/te_decode.h"

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* pid/tid under which events of @uuid show: custom tracks get a synthetic
 * tid derived from their uuid, above the kernel's pid range. */
static void where(const struct tbl_decoded *d, uint64_t uuid, int64_t *pid, int64_t *tid)
{
    const struct tbl_dtrack *t = tbl_decoded_track(d, uuid);

    *pid = t ? t->pid : 0;
    if (t && t->is_thread)
        *tid = t->tid;
    else if (t && t->is_process)
        *tid = t->pid;
    else
        *tid = 0x40000000 + (int64_t)(uuid % 0x3fffffff);
}

static void write_args(FILE *f, const struct tbl_devent *e)
{
    fputs(",\"args\":{", f);
    for (size_t i = 0; i < e->nannots; i++) {
        const struct tbl_dannot *a = &e->annots[i];

        if (i)
            fputc(',', f);
        json_str(f, a->name ? a->name : "?");
        fputc(':', f);
        switch (a->type) {
        case TRACEBPF_ARG_INT:
            fprintf(f, "%" PRId64, a->v.i);
            break;
        case TRACEBPF_ARG_UINT:
            fprintf(f, "%" PRIu64, a->v.u);
            break;
        case TRACEBPF_ARG_DOUBLE:
            fprintf(f, "%.17g", a->v.d);
            break;
        case TRACEBPF_ARG_BOOL:
            fputs(a->v.b ? "true" : "false", f);
            break;
        case TRACEBPF_ARG_STRING:
            json_str(f, a->v.s);
            break;
        case TRACEBPF_ARG_POINTER:
            fprintf(f, "\"0x%" PRIx64 "\"", a->v.u);
            break;
        default:
            fputs("null", f);
        }
    }
    fputc('}', f);
}

static void write_flow(FILE *f, const char *ph, uint64_t id, uint64_t ts, int64_t pid, int64_t tid)
{
    fprintf(f,
            ",\n{\"ph\":\"%s\",\"name\":\"flow\",\"cat\":\"flow\",\"id\":\"0x%" PRIx64
            "\",\"ts\":%.3f,\"pid\":%" PRId64 ",\"tid\":%" PRId64 "%s}",
            ph, id, (double)ts / 1000.0, pid, tid, ph[0] == 'f' ? ",\"bp\":\"e\"" : "");
}

static void write_event(FILE *f, const struct tbl_decoded *d, const struct tbl_devent *e)
{
    static const char *phase[] = {"", "B", "E", "i", "C"};
    const struct tbl_dtrack *t = tbl_decoded_track(d, e->track_uuid);
    int64_t pid, tid;

    if (e->type < 1 || e->type > 4)
        return;
    where(d, e->track_uuid, &pid, &tid);
    fprintf(f, ",\n{\"ph\":\"%s\",\"ts\":%.3f,\"pid\":%" PRId64 ",\"tid\":%" PRId64, phase[e->type],
            (double)e->ts / 1000.0, pid, tid);
    if (e->type == TRACEBPF_EVENT_COUNTER) {
        fputs(",\"name\":", f);
        json_str(f, t && t->name ? t->name : "counter");
        if (e->counter_is_double)
            fprintf(f, ",\"args\":{\"value\":%.17g}}", e->cd);
        else
            fprintf(f, ",\"args\":{\"value\":%" PRId64 "}}", e->ci);
        return;
    }
    if (e->name) {
        fputs(",\"name\":", f);
        json_str(f, e->name);
    }
    if (e->cat) {
        fputs(",\"cat\":", f);
        json_str(f, e->cat);
    }
    if (e->type == TRACEBPF_EVENT_INSTANT)
        fputs(",\"s\":\"t\"", f);
    if (e->nannots)
        write_args(f, e);
    fputc('}', f);
    /* Flow events bind to the slice that encloses them on their thread. */
    for (size_t i = 0; i < e->nflows; i++)
        write_flow(f, "s", e->flows[i], e->ts, pid, tid);
    for (size_t i = 0; i < e->nterm_flows; i++)
        write_flow(f, "f", e->term_flows[i], e->ts, pid, tid);
}

static void write_metadata(FILE *f, const struct tbl_decoded *d)
{
    for (size_t i = 0; i < d->ntracks; i++) {
        const struct tbl_dtrack *t = &d->tracks[i];
        int64_t pid, tid;

        if (!t->name || t->is_counter)
            continue;
        where(d, t->uuid, &pid, &tid);
        fprintf(f,
                ",\n{\"ph\":\"M\",\"name\":\"%s\",\"pid\":%" PRId64 ",\"tid\":%" PRId64
                ",\"args\":{\"name\":",
                t->is_process ? "process_name" : "thread_name", pid, tid);
        json_str(f, t->name);
        fputs("}}", f);
    }
}

int tbl_json_export(const uint8_t *trace, size_t len, const char *path)
{
    struct tbl_decoded *d = NULL;
    FILE *f = NULL;
    int err;

    err = tbl_decode(trace, len, &d);
    if (err)
        goto out;
    f = fopen(path, "we");
    if (!f) {
        err = -errno;
        goto out;
    }
    fputs("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n{\"ph\":\"M\",\"name\":\"clock\","
          "\"pid\":0,\"args\":{\"name\":\"BOOTTIME\"}}",
          f);
    write_metadata(f, d);
    for (size_t i = 0; i < d->nev; i++)
        write_event(f, d, &d->ev[i]);
    fputs("\n]}\n", f);
    if (ferror(f))
        err = -EIO;
out:
    if (f && fclose(f) && !err)
        err = -errno;
    tbl_decoded_free(d);
    return err;
}
