/*
 * ftrace_encode.h - one raw ftrace event (libtraceevent's parse of the
 * event's format file) into a FtraceEvent: typed for the events we have a
 * message for (ftrace/print, power/cpu_frequency, power/cpu_idle), the
 * generic name + fields form (GenericFtraceEvent, 327) for all others.
 */
#ifndef TB_PRODUCERS_FTRACE_FTRACE_ENCODE_H
#define TB_PRODUCERS_FTRACE_FTRACE_ENCODE_H

#include <stdbool.h>
#include <stdint.h>

struct tb_pbw;
struct tep_event;
struct tep_record;

/*
 * tb_ftrace_encode_event() - write @ev/@rec (borrowed) as a FtraceEvent in
 * field @field of the message open in @w.
 * Return: 0 or the writer's error (negative errno).
 */
int tb_ftrace_encode_event(struct tb_pbw *w, uint32_t field, struct tep_event *ev,
                           struct tep_record *rec);

/* tb_ftrace_record_missed() - did the kernel drop events before @rec? */
bool tb_ftrace_record_missed(const struct tep_record *rec);

#endif /* TB_PRODUCERS_FTRACE_FTRACE_ENCODE_H */
