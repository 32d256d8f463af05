/*
 * demo.c - a multi-threaded libtracebpf example: a producer thread makes
 * "frames", hands each to a worker pool through a queue (a flow links the
 * slices across threads), workers process them in nested slices, and
 * counters track the queue depth and a running average.
 *
 *   traced-bpf &  tracebpf record ... & ./tracebpf_demo      # system mode
 *   TRACEBPF_OUTPUT=demo.pftrace ./tracebpf_demo              # standalone
 *   TRACEBPF_OUTPUT=demo.json ./tracebpf_demo                 # Chrome JSON
 *
 * Usage: tracebpf_demo [seconds]   (default 3)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <tracebpf/tracebpf.h>

#define DEMO_CATEGORIES(X)                                   \
    X(demo, "demo", "demo app: frames and work items", NULL) \
    X(demo_io, "demo.io", "demo app: simulated I/O", NULL)   \
    X(demo_verbose, "demo.verbose", "per-item detail", "debug")
TRACEBPF_DEFINE_CATEGORIES(DEMO_CATEGORIES);

#define NWORKERS 3
#define QCAP     64

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t items[QCAP];
    unsigned head, len;
    int done;
} q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};

static void spin_us(unsigned us)
{
    uint64_t end = tracebpf_now() + us * 1000ull;

    while (tracebpf_now() < end)
        ;
}

static void *worker(void *arg)
{
    char name[16];

    snprintf(name, sizeof(name), "worker-%ld", (long)(intptr_t)arg);
    tracebpf_set_thread_name(name);
    for (;;) {
        uint64_t item;

        pthread_mutex_lock(&q.lock);
        while (!q.len && !q.done)
            pthread_cond_wait(&q.cond, &q.lock);
        if (!q.len) {
            pthread_mutex_unlock(&q.lock);
            break;
        }
        item = q.items[q.head];
        q.head = (q.head + 1) % QCAP;
        q.len--;
        TRACE_COUNTER(demo, "queue_depth", q.len);
        pthread_mutex_unlock(&q.lock);

        TRACE_EVENT(demo, "process_item", TRACEBPF_TERMINATING_FLOW(item),
                    TRACEBPF_ARG("item", item));
        {
            TRACE_EVENT(demo_io, "read_input");
            spin_us(200 + item % 300);
        }
        TRACE_EVENT_INSTANT(demo_verbose, "checkpoint", TRACEBPF_ARG("item", item));
        {
            TRACE_EVENT(demo, "compute", TRACEBPF_ARG("weight", 0.5 + (item % 7) / 10.0));
            spin_us(300);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    unsigned seconds = argc > 1 ? (unsigned)atoi(argv[1]) : 3;
    pthread_t th[NWORKERS];
    struct tracebpf_track async;
    uint64_t end, next = 1;
    double avg = 0;

    tracebpf_init(NULL);
    tracebpf_set_thread_name("producer");
    tracebpf_track_init_named(&async, "batches", 0, NULL, 0);
    for (long i = 0; i < NWORKERS; i++)
        pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i);

    end = tracebpf_now() + seconds * 1000000000ull;
    while (tracebpf_now() < end) {
        TRACE_EVENT(demo, "frame", TRACEBPF_ARG("frame", next));
        TRACE_EVENT_BEGIN(demo, "batch", TRACEBPF_ON_TRACK(&async));
        for (int k = 0; k < 4; k++, next++) {
            uint64_t flow = tracebpf_flow_process_scoped(next);

            TRACE_EVENT_INSTANT(demo, "enqueue", TRACEBPF_FLOW(flow), TRACEBPF_ARG("item", next));
            pthread_mutex_lock(&q.lock);
            if (q.len < QCAP) {
                q.items[(q.head + q.len) % QCAP] = flow;
                q.len++;
            }
            TRACE_COUNTER(demo, "queue_depth", q.len);
            pthread_cond_signal(&q.cond);
            pthread_mutex_unlock(&q.lock);
        }
        TRACE_EVENT_END(demo, TRACEBPF_ON_TRACK(&async));
        avg = avg * 0.9 + (double)(next % 13) * 0.1;
        TRACE_COUNTER(demo, "moving_average", avg);
        usleep(2000);
    }
    pthread_mutex_lock(&q.lock);
    q.done = 1;
    pthread_cond_broadcast(&q.cond);
    pthread_mutex_unlock(&q.lock);
    for (int i = 0; i < NWORKERS; i++)
        pthread_join(th[i], NULL);
    tracebpf_shutdown();
    return 0;
}
