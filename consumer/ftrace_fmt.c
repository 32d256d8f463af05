/*
 * ftrace_fmt.c - one FtraceEvent as the kernel prints it in the tracefs
 * "trace" file: "<event>: <fields>", following each event's TP_printk
 * format (sched, task, irq, softirq, raw_syscalls, power, print), plus the
 * line prefix (task-pid, tgid, cpu, latency flags, timestamp).
 */
#include "consumer/ftrace_fmt.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* common_flags bits (kernel trace.h, TRACE_FLAG_*). */
#define F_IRQS_OFF        0x01
#define F_IRQS_NOSUPPORT  0x02
#define F_NEED_RESCHED    0x04
#define F_HARDIRQ         0x08
#define F_SOFTIRQ         0x10
#define F_PREEMPT_RESCHED 0x20
#define F_NMI             0x40
#define F_BH_OFF          0x80

void tb_ftrace_flags(uint32_t f, char out[6])
{
    out[0] = (f & F_IRQS_OFF) && (f & F_BH_OFF) ? 'D'
             : (f & F_IRQS_OFF)                 ? 'd'
             : (f & F_BH_OFF)                   ? 'b'
             : (f & F_IRQS_NOSUPPORT)           ? 'X'
                                                : '.';
    out[1] = (f & F_NEED_RESCHED) && (f & F_PREEMPT_RESCHED) ? 'N'
             : (f & F_NEED_RESCHED)                          ? 'n'
             : (f & F_PREEMPT_RESCHED)                       ? 'p'
                                                             : '.';
    out[2] = (f & F_NMI) && (f & F_HARDIRQ)       ? 'Z'
             : (f & F_NMI)                        ? 'z'
             : (f & F_HARDIRQ) && (f & F_SOFTIRQ) ? 'H'
             : (f & F_HARDIRQ)                    ? 'h'
             : (f & F_SOFTIRQ)                    ? 's'
                                                  : '.';
    /* Preempt depth and migrate-disable are not in the trace. */
    out[3] = '.';
    out[4] = '.';
    out[5] = '\0';
}

int tb_ftrace_prefix(char *buf, size_t len, const char *comm, int32_t pid, int32_t tgid,
                     uint32_t cpu, uint32_t flags, uint64_t ts)
{
    char fl[6], tg[16];

    tb_ftrace_flags(flags, fl);
    if (tgid >= 0)
        snprintf(tg, sizeof(tg), "%7d", tgid);
    else
        snprintf(tg, sizeof(tg), "-------");
    return snprintf(buf, len, "%16s-%-7d (%s) [%03u] %s %5" PRIu64 ".%06" PRIu64 ": ",
                    pid == 0 ? "<idle>" : (comm && *comm ? comm : "<...>"), pid, tg, cpu, fl,
                    ts / 1000000000u, (ts % 1000000000u) / 1000u);
}

void tb_ftrace_task_state(int64_t state, char *out, size_t len)
{
    static const char letters[] = "SDTtXZPI";
    size_t n = 0;
    int i;

    out[0] = '\0';
    if (!(state & 0xff)) {
        snprintf(out, len, "R");
        n = 1;
    }
    for (i = 0; i < 8; i++) {
        if (!(state & (1 << i)))
            continue;
        n += (size_t)snprintf(out + n, len > n ? len - n : 0, "%s%c", n ? "|" : "", letters[i]);
    }
    /* 0x100 is TASK_REPORT_MAX: the task was preempted while runnable. */
    if (state & 0x100)
        snprintf(out + n, len > n ? len - n : 0, "+");
}

static const char *softirq_name(uint32_t vec)
{
    static const char *const names[] = {"HI",       "TIMER",   "NET_TX", "NET_RX",  "BLOCK",
                                        "IRQ_POLL", "TASKLET", "SCHED",  "HRTIMER", "RCU"};

    return vec < sizeof(names) / sizeof(names[0]) ? names[vec] : "UNKNOWN";
}

static const char *s(const char *str)
{
    return str ? str : "";
}

static int wakeup(char *buf, size_t len, const char *name, const char *comm, int32_t pid,
                  int32_t prio, int32_t cpu)
{
    return snprintf(buf, len, "%s: comm=%s pid=%d prio=%d target_cpu=%03d", name, s(comm), pid,
                    prio, cpu);
}

static int generic(char *buf, size_t len, const Perfetto__Protos__GenericFtraceEvent *g)
{
    size_t n, i;

    n = (size_t)snprintf(buf, len, "%s:", s(g->event_name));
    for (i = 0; i < g->n_field && n < len; i++) {
        const Perfetto__Protos__GenericFtraceEvent__Field *f = g->field[i];

        switch (f->value_case) {
        case PERFETTO__PROTOS__GENERIC_FTRACE_EVENT__FIELD__VALUE_STR_VALUE:
            n += (size_t)snprintf(buf + n, len - n, " %s=%s", s(f->name), s(f->str_value));
            break;
        case PERFETTO__PROTOS__GENERIC_FTRACE_EVENT__FIELD__VALUE_INT_VALUE:
            n += (size_t)snprintf(buf + n, len - n, " %s=%" PRId64, s(f->name), f->int_value);
            break;
        default:
            n += (size_t)snprintf(buf + n, len - n, " %s=%" PRIu64, s(f->name), f->uint_value);
            break;
        }
    }
    return (int)n;
}

static int sys_enter(char *buf, size_t len, const Perfetto__Protos__SysEnterFtraceEvent *e)
{
    uint64_t a[6] = {0};
    size_t i;

    for (i = 0; i < e->n_args && i < 6; i++)
        a[i] = e->args[i];
    return snprintf(buf, len,
                    "sys_enter: NR %" PRId64 " (%" PRIx64 ", %" PRIx64 ", %" PRIx64 ", %" PRIx64
                    ", %" PRIx64 ", %" PRIx64 ")",
                    e->id, a[0], a[1], a[2], a[3], a[4], a[5]);
}

int tb_ftrace_format(const Perfetto__Protos__FtraceEvent *e, char *buf, size_t len)
{
    char st[32];

    switch (e->event_case) {
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_SWITCH: {
        const Perfetto__Protos__SchedSwitchFtraceEvent *x = e->sched_switch;

        tb_ftrace_task_state(x->prev_state, st, sizeof(st));
        return snprintf(buf, len,
                        "sched_switch: prev_comm=%s prev_pid=%d prev_prio=%d prev_state=%s ==> "
                        "next_comm=%s next_pid=%d next_prio=%d",
                        s(x->prev_comm), x->prev_pid, x->prev_prio, st, s(x->next_comm),
                        x->next_pid, x->next_prio);
    }
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_WAKING:
        return wakeup(buf, len, "sched_waking", e->sched_waking->comm, e->sched_waking->pid,
                      e->sched_waking->prio, e->sched_waking->target_cpu);
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_WAKEUP:
        return wakeup(buf, len, "sched_wakeup", e->sched_wakeup->comm, e->sched_wakeup->pid,
                      e->sched_wakeup->prio, e->sched_wakeup->target_cpu);
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_WAKEUP_NEW:
        return wakeup(buf, len, "sched_wakeup_new", e->sched_wakeup_new->comm,
                      e->sched_wakeup_new->pid, e->sched_wakeup_new->prio,
                      e->sched_wakeup_new->target_cpu);
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_PROCESS_FORK:
        return snprintf(buf, len, "sched_process_fork: comm=%s pid=%d child_comm=%s child_pid=%d",
                        s(e->sched_process_fork->parent_comm), e->sched_process_fork->parent_pid,
                        s(e->sched_process_fork->child_comm), e->sched_process_fork->child_pid);
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_PROCESS_EXEC:
        return snprintf(buf, len, "sched_process_exec: filename=%s pid=%d old_pid=%d",
                        s(e->sched_process_exec->filename), e->sched_process_exec->pid,
                        e->sched_process_exec->old_pid);
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_PROCESS_EXIT:
        return snprintf(buf, len, "sched_process_exit: comm=%s pid=%d prio=%d",
                        s(e->sched_process_exit->comm), e->sched_process_exit->pid,
                        e->sched_process_exit->prio);
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_PROCESS_FREE:
        return snprintf(buf, len, "sched_process_free: comm=%s pid=%d prio=%d",
                        s(e->sched_process_free->comm), e->sched_process_free->pid,
                        e->sched_process_free->prio);
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_PROCESS_WAIT:
        return snprintf(buf, len, "sched_process_wait: comm=%s pid=%d prio=%d",
                        s(e->sched_process_wait->comm), e->sched_process_wait->pid,
                        e->sched_process_wait->prio);
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_TASK_NEWTASK:
        return snprintf(buf, len,
                        "task_newtask: pid=%d comm=%s clone_flags=%" PRIx64 " oom_score_adj=%d",
                        e->task_newtask->pid, s(e->task_newtask->comm),
                        e->task_newtask->clone_flags, e->task_newtask->oom_score_adj);
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_TASK_RENAME:
        return snprintf(buf, len, "task_rename: pid=%d oldcomm=%s newcomm=%s oom_score_adj=%d",
                        e->task_rename->pid, s(e->task_rename->oldcomm), s(e->task_rename->newcomm),
                        e->task_rename->oom_score_adj);
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_IRQ_HANDLER_ENTRY:
        return snprintf(buf, len, "irq_handler_entry: irq=%d name=%s", e->irq_handler_entry->irq,
                        s(e->irq_handler_entry->name));
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_IRQ_HANDLER_EXIT:
        return snprintf(buf, len, "irq_handler_exit: irq=%d ret=%s", e->irq_handler_exit->irq,
                        e->irq_handler_exit->ret ? "handled" : "unhandled");
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SOFTIRQ_ENTRY:
        return snprintf(buf, len, "softirq_entry: vec=%u [action=%s]", e->softirq_entry->vec,
                        softirq_name(e->softirq_entry->vec));
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SOFTIRQ_EXIT:
        return snprintf(buf, len, "softirq_exit: vec=%u [action=%s]", e->softirq_exit->vec,
                        softirq_name(e->softirq_exit->vec));
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SOFTIRQ_RAISE:
        return snprintf(buf, len, "softirq_raise: vec=%u [action=%s]", e->softirq_raise->vec,
                        softirq_name(e->softirq_raise->vec));
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SYS_ENTER:
        return sys_enter(buf, len, e->sys_enter);
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SYS_EXIT:
        return snprintf(buf, len, "sys_exit: NR %" PRId64 " = %" PRId64, e->sys_exit->id,
                        e->sys_exit->ret);
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_CPU_FREQUENCY:
        return snprintf(buf, len, "cpu_frequency: state=%u cpu_id=%u", e->cpu_frequency->state,
                        e->cpu_frequency->cpu_id);
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_CPU_IDLE:
        /* The kernel prints the state signed: leaving idle is state=-1. */
        return snprintf(buf, len, "cpu_idle: state=%d cpu_id=%u", (int32_t)e->cpu_idle->state,
                        e->cpu_idle->cpu_id);
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_PRINT: {
        const char *b = s(e->print->buf);
        size_t n = strlen(b);

        while (n && b[n - 1] == '\n')
            n--;
        return snprintf(buf, len, "tracing_mark_write: %.*s", (int)n, b);
    }
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_GENERIC:
        return generic(buf, len, e->generic);
    default:
        return snprintf(buf, len, "unknown_event: perfetto_event_id=%d", (int)e->event_case);
    }
}
