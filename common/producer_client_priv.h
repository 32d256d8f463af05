/*
 * producer_client_priv.h - state shared by the producer client's files:
 * producer_client.c (connection, handshake, commands), producer_client_life.c
 * (create/destroy, accessors, fork) and producer_client_smb.c (SMB
 * references, writer ids, work posted from other threads, commit batching).
 * Nothing else includes it.
 */
#ifndef TB_COMMON_PRODUCER_CLIENT_PRIV_H
#define TB_COMMON_PRODUCER_CLIENT_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "common/producer_client.h"

struct tb_ipc_client;

/* A reference-counted SMB and its arbiter (see producer_client.h). */
struct tb_pc_smb {
    atomic_uint refs;
    pid_t pid; /* creator; a forked child must never unmap or free it */
    uint64_t generation;
    struct tb_shm *shm;
    struct tb_arbiter *arb;
};

/* A registered data source: an owned deep copy of its descriptor. */
struct pc_ds {
    Perfetto__Protos__DataSourceDescriptor *desc;
    uint64_t sent_conn; /* connection serial it was last registered on */
};

/* A live data source instance (IPC thread only). */
struct pc_instance {
    uint64_t id;
    bool notify_on_start;
    bool notify_on_stop;
};

enum pc_op_kind {
    PC_OP_REGISTER_DS,
    PC_OP_UPDATE_DS,
    PC_OP_REGISTER_WRITER,
    PC_OP_UNREGISTER_WRITER,
    PC_OP_NOTIFY_STOPPED,
};

/* Work handed to the IPC thread by a thread-safe entry point. */
struct pc_op {
    struct pc_op *next;
    enum pc_op_kind kind;
    uint32_t a;
    uint64_t b;
    Perfetto__Protos__DataSourceDescriptor *desc; /* PC_OP_UPDATE_DS, owned */
};

/*
 * The ctx of the drain task posted on the loop. Separate from struct tb_pc
 * so a task still queued on a caller's loop after tb_pc_destroy() finds a
 * tombstone (pc == NULL) instead of freed memory.
 */
struct pc_waker {
    struct tb_pc *pc;
};

enum pc_state {
    PC_IDLE,         /* no connection; a retry timer may be armed */
    PC_BINDING,      /* connected, BindService sent */
    PC_INITIALIZING, /* InitializeConnection + GetAsyncCommand sent */
    PC_CONNECTED,    /* InitializeConnection accepted */
};

struct tb_pc {
    struct tb_pc_opts opts; /* strings point at the copies below */
    char *producer_name;
    char *socket_name;
    char *sdk_version;

    struct tb_loop *loop;
    pthread_t thread;
    bool own_thread;
    bool thread_started;
    bool destroying;

    /* IPC thread only. */
    struct tb_ipc_client *ipc;
    enum pc_state state;
    uint64_t conn_serial;
    uint64_t retry_timer;
    uint32_t failures;   /* consecutive failed attempts, for back-off */
    uint32_t reconnects; /* established connections lost */
    bool gave_up;
    struct tb_pc_smb *ipc_smb; /* what tb_pc_arbiter() returns */
    struct pc_instance *instances;
    size_t n_instances, cap_instances;
    bool sync_done;

    /* Everything below is shared with other threads, under @lock. */
    pthread_mutex_t lock;
    struct pc_ds *ds;
    size_t n_ds, cap_ds;
    struct tb_pc_smb *smb; /* current SMB for tb_pc_smb_acquire() */
    struct pc_op *ops_head, *ops_tail;
    uint64_t flush_ack; /* highest flush id waiting to be acked, 0 = none */
    bool commit_wanted; /* a batch may be pending */
    bool drain_posted;  /* a drain task is queued on the loop */
    struct pc_waker *waker;
    uint64_t writer_ids[(TB_PC_MAX_WRITER_ID + 1 + 63) / 64];
    uint16_t writer_hint;
    struct tb_pc_stats stats;

    atomic_uint_fast64_t generation;
    atomic_bool connected;
    atomic_bool inert; /* after fork, in the child */
};

/* producer_client_smb.c */

/* Wrap a freshly attached SMB (ownership of @shm passes, freed on error). */
int tb_pci_smb_new(struct tb_pc *pc, struct tb_shm *shm, struct tb_pc_smb **out);
/* Make @smb current (IPC thread); returns the previous one for release. */
struct tb_pc_smb *tb_pci_smb_install(struct tb_pc *pc, struct tb_pc_smb *smb);
/* Free a queued op and what it owns. Accepts NULL. */
void tb_pci_op_free(struct pc_op *op);
/* Queue @op (malloc()ed, ownership passes) and wake the IPC thread. */
int tb_pci_post_op(struct tb_pc *pc, struct pc_op *op);
/* Make sure a drain task runs soon; @pc->lock held by the caller. */
int tb_pci_wake_locked(struct tb_pc *pc);
/* Take the pending batch and send it as CommitData (IPC thread). */
void tb_pci_send_commits(struct tb_pc *pc, uint64_t flush_request_id);
/* Run everything posted so far (IPC thread). */
void tb_pci_drain(struct tb_pc *pc);
/* The drain task's entry point, posted on the loop. */
void tb_pci_drain_task(void *ctx);

/* producer_client.c */

/* Connect and start the handshake; the retry timer's task (IPC thread). */
void tb_pci_try_connect(void *ctx);
/* Send RegisterDataSource for every descriptor not yet sent (IPC thread). */
void tb_pci_register_pending_ds(struct tb_pc *pc);
/*
 * Swap in @desc (ownership passes) for the data source with its id and
 * announce it on the live connection (IPC thread).
 */
void tb_pci_update_ds(struct tb_pc *pc, Perfetto__Protos__DataSourceDescriptor *desc);
/* Invoke a drop_reply method if connected (IPC thread). */
int tb_pci_invoke_drop(struct tb_pc *pc, const char *method, const ProtobufCMessage *args);

#endif /* TB_COMMON_PRODUCER_CLIENT_PRIV_H */
