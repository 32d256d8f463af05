/*
 * probes_bpf_test.c - the BPF units against the real kernel: a workload of
 * known shape (forked children with chosen comms that exec and exit, a pipe
 * ping-pong between two threads) recorded with the pid filter set to this
 * test, then exact counts, pids and comms checked on the records, zero drops,
 * and no program of ours left loaded afterwards.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <bpf/bpf.h>

#include "bpf/proc.h"
#include "bpf/record.h"
#include "bpf/sched.h"
#include "bpf/syscall.h"
#include "producers/ftrace/bpf_probes.h"

#define NR_CHILDREN 5
#define PINGS       200

struct recs {
    uint8_t *buf;
    size_t len, cap;
    size_t count;
};

static int collect(void *ctx, const void *rec, size_t size)
{
    struct recs *r = ctx;

    if (r->len + size + sizeof(uint64_t) > r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 1 << 20;
        while (cap < r->len + size + sizeof(uint64_t))
            cap *= 2;
        uint8_t *nb = realloc(r->buf, cap);
        if (!nb)
            return -ENOMEM;
        r->buf = nb;
        r->cap = cap;
    }
    uint64_t sz = size;
    memcpy(r->buf + r->len, &sz, sizeof(sz));
    memcpy(r->buf + r->len + sizeof(sz), rec, size);
    r->len += sizeof(sz) + size;
    r->count++;
    return 0;
}

/* Iterate: for (const struct tb_rec_hdr *h = NULL; (h = next_rec(r, &off));) */
static const struct tb_rec_hdr *next_rec(const struct recs *r, size_t *off)
{
    const struct tb_rec_hdr *h;
    uint64_t sz;

    if (*off >= r->len)
        return NULL;
    memcpy(&sz, r->buf + *off, sizeof(sz));
    h = (const void *)(r->buf + *off + sizeof(sz));
    *off += sizeof(sz) + sz;
    return h;
}

/* Our programs all carry the "tb_" prefix; count those loaded right now. */
static int count_our_progs(void)
{
    __u32 id = 0;
    int n = 0;

    while (!bpf_prog_get_next_id(id, &id)) {
        struct bpf_prog_info info = {0};
        __u32 len = sizeof(info);
        int fd = bpf_prog_get_fd_by_id(id);

        if (fd < 0)
            continue;
        if (!bpf_obj_get_info_by_fd(fd, &info, &len) && !strncmp(info.name, "tb_", 3))
            n++;
        close(fd);
    }
    return n;
}

/* Programs are freed by the kernel after an RCU grace period: wait a bit. */
static int settled_prog_count(int want)
{
    int n = count_our_progs();

    for (int i = 0; i < 300 && n != want; i++) {
        usleep(10000);
        n = count_our_progs();
    }
    return n;
}

static int setup(void **state)
{
    if (geteuid() != 0) {
        fprintf(stderr, "probes_bpf_test: SKIP: needs root (CAP_BPF + CAP_PERFMON)\n");
        return 0;
    }
    if (access("/sys/kernel/btf/vmlinux", R_OK)) {
        fprintf(stderr, "probes_bpf_test: SKIP: no /sys/kernel/btf/vmlinux\n");
        return 0;
    }
    *state = (void *)1;
    return 0;
}

#define NEED_KERNEL(state) \
    do {                   \
        if (!*(state))     \
            skip();        \
    } while (0)

static struct tb_bpf_probes *start(const char *const *events, size_t n, pid_t *tgid,
                                   const char *comm, struct recs *out)
{
    struct tb_bpf_probes_opts o = {.events = events, .nr_events = n};
    struct tb_bpf_probes *p = NULL;

    o.filter.tgids = tgid;
    o.filter.nr_tgids = tgid ? 1 : 0;
    o.filter.comm = comm;
    o.rings.drain_period_ms = 20;
    assert_int_equal(tb_bpf_probes_new(&o, &p), 0);
    assert_non_null(tb_bpf_probes_rings(p));
    assert_int_equal(tb_bpf_rings_start(tb_bpf_probes_rings(p), collect, out), 0);
    return p;
}

static void stop(struct tb_bpf_probes *p, struct tb_bpf_loss *loss)
{
    tb_bpf_probes_stop(p);
    assert_int_equal(tb_bpf_rings_loss(tb_bpf_probes_rings(p), loss), 0);
    tb_bpf_probes_free(p);
}

/* Fork children with chosen comms; each renames, execs /bin/true, exits. */
static void test_fork_rename_exec_exit(void **state)
{
    static const char *const ev[] = {"sched_process_fork", "sched_process_exec",
                                     "sched_process_exit", "task_newtask", "task/task_rename"};
    int fork_n = 0, rename_n = 0, exec_n = 0, exit_n = 0, newtask_n = 0, stranger = 0;
    pid_t self = getpid(), kids[NR_CHILDREN], bystander;
    int go[2], before = settled_prog_count(0);
    struct recs recs = {0};
    struct tb_bpf_loss loss;
    struct tb_bpf_probes *p;
    size_t off = 0;
    const struct tb_rec_hdr *h;

    NEED_KERNEL(state);
    /* Forked before tracing starts: outside the filter, must never show up. */
    assert_int_equal(pipe(go), 0);
    bystander = fork();
    assert_true(bystander >= 0);
    if (bystander == 0) {
        char c;
        close(go[1]);
        if (read(go[0], &c, 1) != 1)
            _exit(1);
        prctl(PR_SET_NAME, "tbbystander");
        if (fork() == 0)
            _exit(0);
        wait(NULL);
        _exit(0);
    }
    close(go[0]);

    p = start(ev, 5, &self, NULL, &recs);
    assert_true(count_our_progs() > before);
    assert_int_equal(write(go[1], "x", 1), 1);
    close(go[1]);
    for (int i = 0; i < NR_CHILDREN; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            char name[16];
            snprintf(name, sizeof(name), "tbchild%d", i);
            prctl(PR_SET_NAME, name);
            execl("/bin/true", "true", (char *)NULL);
            _exit(127);
        }
    }
    for (int i = 0; i < NR_CHILDREN; i++) {
        int st;
        assert_int_equal(waitpid(kids[i], &st, 0), kids[i]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    assert_int_equal(waitpid(bystander, NULL, 0), bystander);
    stop(p, &loss);
    assert_int_equal(settled_prog_count(before), before);

    while ((h = next_rec(&recs, &off))) {
        int kid = -1;
        for (int i = 0; i < NR_CHILDREN; i++) {
            if ((pid_t)h->pid == kids[i])
                kid = i;
        }
        if ((pid_t)h->pid == bystander)
            stranger++;
        switch (h->type) {
        case TB_REC_PROC_FORK: {
            const struct tb_proc_fork *f = (const void *)h;
            if (f->parent_pid == bystander)
                stranger++;
            /* The drain thread is a thread of ours, not a child process. */
            if (f->parent_pid != self || f->child_tgid == self)
                break;
            fork_n++;
            int ok = 0;
            for (int i = 0; i < NR_CHILDREN; i++)
                ok |= f->child_pid == kids[i] && f->child_tgid == kids[i];
            assert_true(ok);
            break;
        }
        case TB_REC_TASK_NEWTASK: {
            const struct tb_task_newtask *t = (const void *)h;
            newtask_n += (pid_t)h->pid == self && !(t->clone_flags & CLONE_THREAD);
            break;
        }
        case TB_REC_TASK_RENAME: {
            const struct tb_task_rename *r = (const void *)h;
            char want[16];
            assert_true(kid >= 0);
            assert_int_equal(r->pid, kids[kid]);
            snprintf(want, sizeof(want), "tbchild%d", kid);
            /* prctl rename and exec's rename to "true" */
            if (!strcmp(r->newcomm, want))
                rename_n++;
            else
                assert_string_equal(r->newcomm, "true");
            break;
        }
        case TB_REC_PROC_EXEC: {
            const struct tb_proc_exec *e = (const void *)h;
            assert_true(kid >= 0);
            assert_int_equal(e->pid, kids[kid]);
            assert_string_equal(e->filename, "/bin/true");
            exec_n++;
            break;
        }
        case TB_REC_PROC_EXIT: {
            const struct tb_proc_exit *x = (const void *)h;
            if (x->tgid == self)
                break; /* the drain thread */
            assert_true(kid >= 0);
            assert_int_equal(x->pid, kids[kid]);
            assert_string_equal(x->comm, "true");
            exit_n++;
            break;
        }
        default:
            fail_msg("unexpected record type %u", h->type);
        }
    }
    free(recs.buf);
    assert_int_equal(fork_n, NR_CHILDREN);
    assert_int_equal(newtask_n, NR_CHILDREN);
    assert_int_equal(rename_n, NR_CHILDREN);
    assert_int_equal(exec_n, NR_CHILDREN);
    assert_int_equal(exit_n, NR_CHILDREN);
    assert_int_equal(stranger, 0);
    assert_int_equal(loss.dropped, 0);
    assert_int_equal(loss.total, recs.count);
}

struct pingpong {
    int ab[2], ba[2];
    pid_t tid[2];
};

static void *ping_main(void *arg)
{
    struct pingpong *pp = arg;
    char c = 'p';

    /* Named here: pong runs (and blocks) before its creator could name it. */
    prctl(PR_SET_NAME, "tbping");
    pp->tid[0] = syscall(SYS_gettid);
    for (int i = 0; i < PINGS; i++) {
        if (write(pp->ab[1], &c, 1) != 1 || read(pp->ba[0], &c, 1) != 1)
            break;
    }
    return NULL;
}

static void *pong_main(void *arg)
{
    struct pingpong *pp = arg;
    char c;

    prctl(PR_SET_NAME, "tbpong");
    pp->tid[1] = syscall(SYS_gettid);
    for (int i = 0; i < PINGS; i++) {
        if (read(pp->ab[0], &c, 1) != 1 || write(pp->ba[1], &c, 1) != 1)
            break;
    }
    return NULL;
}

static int start_rt_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
    struct sched_param sp = {.sched_priority = 10};
    pthread_attr_t attr;
    cpu_set_t cpus;
    int err;

    CPU_ZERO(&cpus);
    CPU_SET(0, &cpus);
    pthread_attr_init(&attr);
    pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
    pthread_attr_setschedpolicy(&attr, SCHED_FIFO);
    pthread_attr_setschedparam(&attr, &sp);
    pthread_attr_setaffinity_np(&attr, sizeof(cpus), &cpus);
    err = pthread_create(t, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    return err;
}

/*
 * Two SCHED_FIFO threads of equal priority on CPU 0 never preempt each
 * other, so every write wakes a blocked peer and every read blocks: exactly
 * PINGS wakings and PINGS sleeping switches for each of the two threads.
 */
static void test_pingpong_pairs(void **state)
{
    static const char *const ev[] = {"sched/sched_switch", "sched/sched_waking"};
    static const char *const names[] = {"tbping", "tbpong"};
    int woken[2] = {0}, slept[2] = {0}, switched_in[2] = {0};
    int pending[2] = {0}, unpaired = 0, foreign = 0;
    struct pingpong pp = {0};
    pid_t self = getpid();
    struct recs recs = {0};
    struct tb_bpf_loss loss;
    struct tb_bpf_probes *p;
    pthread_t a, b;
    size_t off = 0;
    const struct tb_rec_hdr *h;
    cpu_set_t old;

    NEED_KERNEL(state);
    assert_int_equal(pipe(pp.ab), 0);
    assert_int_equal(pipe(pp.ba), 0);
    p = start(ev, 2, &self, NULL, &recs);
    /*
     * Pong first: with us on CPU 0 as well it preempts us at once (FIFO over
     * CFS) and blocks in read before ping exists.
     */
    sched_getaffinity(0, sizeof(old), &old);
    cpu_set_t cpu0;
    CPU_ZERO(&cpu0);
    CPU_SET(0, &cpu0);
    sched_setaffinity(0, sizeof(cpu0), &cpu0);
    if (start_rt_thread(&b, pong_main, &pp)) {
        sched_setaffinity(0, sizeof(old), &old);
        stop(p, &loss);
        skip();
    }
    assert_int_equal(start_rt_thread(&a, ping_main, &pp), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    sched_setaffinity(0, sizeof(old), &old);
    stop(p, &loss);

    while ((h = next_rec(&recs, &off))) {
        if (h->type == TB_REC_SCHED_WAKING) {
            const struct tb_sched_wake *w = (const void *)h;
            for (int i = 0; i < 2; i++) {
                /* Before its rename a thread waits once in glibc's start-up. */
                if (w->pid != pp.tid[i] || strcmp(w->comm, names[i]))
                    continue;
                /* Woken by the peer, never by anyone else. */
                assert_int_equal(h->pid, pp.tid[1 - i]);
                woken[i]++;
                unpaired += pending[i];
                pending[i] = 1;
            }
        } else if (h->type == TB_REC_SCHED_SWITCH) {
            const struct tb_sched_switch *s = (const void *)h;
            for (int i = 0; i < 2; i++) {
                if (s->prev_pid == pp.tid[i] && s->prev_state == 1 &&
                    !strcmp(s->prev_comm, names[i])) {
                    assert_int_equal(h->cpu, 0);
                    slept[i]++;
                }
                if (s->next_pid == pp.tid[i] && pending[i]) {
                    switched_in[i]++;
                    pending[i] = 0;
                }
            }
            if (s->prev_state == TB_SCHED_STATE_PREEMPTED &&
                (s->prev_pid == pp.tid[0] || s->prev_pid == pp.tid[1]))
                foreign++;
        } else {
            fail_msg("unexpected record type %u", h->type);
        }
    }
    free(recs.buf);
    assert_int_equal(woken[0], PINGS);
    assert_int_equal(woken[1], PINGS);
    assert_int_equal(slept[0], PINGS);
    assert_int_equal(slept[1], PINGS);
    assert_int_equal(switched_in[0], PINGS);
    assert_int_equal(switched_in[1], PINGS);
    assert_int_equal(unpaired, 0);
    assert_int_equal(foreign, 0);
    assert_int_equal(loss.dropped, 0);
    /* Every record the programs counted was delivered: none in flight. */
    assert_int_equal(loss.total, recs.count);
}

/* A comm filter keeps only that comm's events: renames of other tasks go. */
static void test_comm_filter(void **state)
{
    static const char *const ev[] = {"sched_process_exit"};
    struct recs recs = {0};
    struct tb_bpf_loss loss;
    struct tb_bpf_probes *p;
    const struct tb_rec_hdr *h;
    size_t off = 0;
    pid_t kids[4];
    int n = 0;

    NEED_KERNEL(state);
    p = start(ev, 1, NULL, "tbkeepme", &recs);
    for (int i = 0; i < 4; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            prctl(PR_SET_NAME, i % 2 ? "tbkeepme" : "tbdropme");
            _exit(0);
        }
    }
    for (int i = 0; i < 4; i++)
        waitpid(kids[i], NULL, 0);
    stop(p, &loss);
    while ((h = next_rec(&recs, &off))) {
        const struct tb_proc_exit *x = (const void *)h;
        assert_int_equal(h->type, TB_REC_PROC_EXIT);
        assert_string_equal(x->comm, "tbkeepme");
        n += x->pid == kids[1] || x->pid == kids[3];
    }
    free(recs.buf);
    assert_int_equal(n, 2);
    assert_int_equal(loss.dropped, 0);
}

/* The syscall-set filter keeps only the named syscall, with its arguments. */
static void test_syscall_filter(void **state)
{
    static const char *const ev[] = {"raw_syscalls/sys_enter", "raw_syscalls/sys_exit"};
    struct tb_bpf_probes_opts o = {.events = ev, .nr_events = 2};
    uint32_t nr = SYS_getppid;
    struct recs recs = {0};
    struct tb_bpf_loss loss;
    struct tb_bpf_probes *p;
    const struct tb_rec_hdr *h;
    pid_t self = getpid();
    int enter = 0, exits = 0;
    size_t off = 0;

    NEED_KERNEL(state);
    o.filter.tgids = &self;
    o.filter.nr_tgids = 1;
    o.filter.syscalls = &nr;
    o.filter.nr_syscalls = 1;
    assert_int_equal(tb_bpf_probes_new(&o, &p), 0);
    for (int i = 0; i < 7; i++)
        syscall(SYS_getppid);
    /* Not started: drain synchronously on this thread. */
    assert_true(tb_bpf_rings_consume(tb_bpf_probes_rings(p), collect, &recs) >= 14);
    assert_int_equal(tb_bpf_rings_loss(tb_bpf_probes_rings(p), &loss), 0);
    tb_bpf_probes_free(p);
    while ((h = next_rec(&recs, &off))) {
        assert_int_equal((pid_t)h->pid, self);
        if (h->type == TB_REC_SYS_ENTER) {
            assert_int_equal(((const struct tb_sys_enter *)h)->id, SYS_getppid);
            enter++;
        } else {
            assert_int_equal(h->type, TB_REC_SYS_EXIT);
            assert_int_equal(((const struct tb_sys_exit *)h)->id, SYS_getppid);
            assert_int_equal(((const struct tb_sys_exit *)h)->ret, getppid());
            exits++;
        }
    }
    free(recs.buf);
    assert_int_equal(enter, 7);
    assert_int_equal(exits, 7);
    assert_int_equal(loss.dropped, 0);
}

static uint64_t boot_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_BOOTTIME, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/*
 * All units start together: units are loaded first and attached in one
 * tight loop, so no kind of record (sched_switch here, which used to lead
 * by ~120 ms) predates the end of tb_bpf_probes_new() by more than the
 * attach loop, and a fork right after start is seen.
 */
static void test_units_start_together(void **state)
{
    static const char *const ev[] = {"sched_switch", "sched_process_fork", "sys_enter"};
    uint64_t first[TB_REC_TYPE_MAX] = {0}, t_before, t_after;
    struct tb_bpf_loss loss;
    struct recs r = {0};
    struct tb_bpf_probes *p;
    size_t off = 0;
    pid_t kid;
    int forks = 0;

    NEED_KERNEL(state);
    t_before = boot_ns();
    p = start(ev, 3, NULL, NULL, &r);
    t_after = boot_ns();
    kid = fork();
    if (kid == 0)
        _exit(0);
    assert_true(kid > 0);
    waitpid(kid, NULL, 0);
    usleep(100 * 1000);
    stop(p, &loss);
    for (const struct tb_rec_hdr *h; (h = next_rec(&r, &off));) {
        if (h->type < TB_REC_TYPE_MAX && (!first[h->type] || h->ts < first[h->type]))
            first[h->type] = h->ts;
        if (h->type == TB_REC_PROC_FORK && ((const struct tb_proc_fork *)h)->child_pid == kid)
            forks++;
    }
    fprintf(stderr, "start took %.1f ms; first switch %+.1f ms, first sys_enter %+.1f ms\n",
            (t_after - t_before) / 1e6, ((double)first[TB_REC_SCHED_SWITCH] - t_after) / 1e6,
            ((double)first[TB_REC_SYS_ENTER] - t_after) / 1e6);
    assert_int_equal(forks, 1);
    assert_true(first[TB_REC_SCHED_SWITCH] && first[TB_REC_SYS_ENTER]);
    /* The attach loop takes a few ms; loading took ~100 ms a unit. */
    assert_true(first[TB_REC_SCHED_SWITCH] + 20000000ull >= t_after);
    assert_true(first[TB_REC_SYS_ENTER] + 20000000ull >= t_after);
    free(r.buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fork_rename_exec_exit), cmocka_unit_test(test_pingpong_pairs),
        cmocka_unit_test(test_comm_filter),           cmocka_unit_test(test_syscall_filter),
        cmocka_unit_test(test_units_start_together),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
