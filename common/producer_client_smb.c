/*
 * producer_client_smb.c - the thread-facing half of the producer client:
 * reference-counted SMBs, writer id allocation, work that app threads post
 * to the IPC thread, and turning the arbiter's commit batches into
 * CommitData requests (split to stay under the IPC frame limit).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/event_loop.h"
#include "common/ipc_client.h"
#include "common/ipc_frame.h"
#include "common/log.h"
#include "common/producer_client_priv.h"
#include "perfetto/common/commit_data_request.pb-c.h"
#include "perfetto/ipc/producer_port.pb-c.h"

/*
 * Bytes a CommitDataRequest may take so the whole frame (length header,
 * IPCFrame, InvokeMethod wrapper) stays under 128 KiB - 512 (spec §1.10).
 */
#define PC_COMMIT_BUDGET (TB_IPC_MAX_FRAME_SIZE - 512u - 64u)
/*
 * Entries (moves + patched chunks) per request. traced has no such cap, but
 * traced-bpf refuses requests over --max-commit-entries (default 8192).
 */
#define PC_COMMIT_MAX_ENTRIES 4096u

/* Called on writer threads when a chunk or patch was queued for commit. */
static void pc_arbiter_notify(void *ctx, bool urgent)
{
    struct tb_pc *pc = ctx;

    (void)urgent; /* every commit goes out on the next loop round anyway */
    if (atomic_load_explicit(&pc->inert, memory_order_relaxed))
        return;
    pthread_mutex_lock(&pc->lock);
    pc->commit_wanted = true;
    tb_pci_wake_locked(pc);
    pthread_mutex_unlock(&pc->lock);
}

int tb_pci_smb_new(struct tb_pc *pc, struct tb_shm *shm, struct tb_pc_smb **out)
{
    struct tb_pc_smb *smb;
    int err;

    smb = calloc(1, sizeof(*smb));
    if (!smb) {
        tb_shm_destroy(shm);
        return -ENOMEM;
    }
    err = tb_arbiter_create(shm, pc->opts.smb_layout, &smb->arb);
    if (err) {
        tb_shm_destroy(shm);
        free(smb);
        return err;
    }
    tb_arbiter_set_notify(smb->arb, pc_arbiter_notify, pc);
    atomic_init(&smb->refs, 1);
    smb->pid = getpid();
    smb->shm = shm;
    *out = smb;
    return 0;
}

struct tb_pc_smb *tb_pci_smb_install(struct tb_pc *pc, struct tb_pc_smb *smb)
{
    struct tb_pc_smb *old;

    pthread_mutex_lock(&pc->lock);
    old = pc->smb;
    /* A new generation for attach and for retire alike: writers move. */
    if (smb)
        smb->generation = atomic_fetch_add(&pc->generation, 1) + 1;
    else
        atomic_fetch_add(&pc->generation, 1);
    pc->smb = smb;
    pthread_mutex_unlock(&pc->lock);
    return old;
}

int tb_pc_smb_acquire(struct tb_pc *pc, struct tb_pc_smb **out)
{
    int err = -ENOTCONN;

    *out = NULL;
    if (atomic_load(&pc->inert))
        return err;
    pthread_mutex_lock(&pc->lock);
    if (pc->smb) {
        atomic_fetch_add(&pc->smb->refs, 1);
        *out = pc->smb;
        err = 0;
    }
    pthread_mutex_unlock(&pc->lock);
    return err;
}

void tb_pc_smb_release(struct tb_pc_smb *smb)
{
    if (!smb || smb->pid != getpid())
        return;
    if (atomic_fetch_sub(&smb->refs, 1) != 1)
        return;
    tb_arbiter_destroy(smb->arb);
    tb_shm_destroy(smb->shm);
    free(smb);
}

struct tb_arbiter *tb_pc_smb_arbiter(const struct tb_pc_smb *smb)
{
    return smb->arb;
}

struct tb_shm *tb_pc_smb_shm(const struct tb_pc_smb *smb)
{
    return smb->shm;
}

uint64_t tb_pc_smb_generation(const struct tb_pc_smb *smb)
{
    return smb->generation;
}

uint64_t tb_pc_generation(const struct tb_pc *pc)
{
    return atomic_load_explicit(&((struct tb_pc *)pc)->generation, memory_order_relaxed);
}

uint16_t tb_pc_alloc_writer_id(struct tb_pc *pc)
{
    uint16_t id = 0;
    uint32_t i, n;

    pthread_mutex_lock(&pc->lock);
    /* Start after the last id handed out so a freed id is not reused at once. */
    for (n = 0; n < TB_PC_MAX_WRITER_ID; n++) {
        i = (uint32_t)(pc->writer_hint + n) % TB_PC_MAX_WRITER_ID + 1;
        if (!(pc->writer_ids[i / 64] & (1ull << (i % 64)))) {
            pc->writer_ids[i / 64] |= 1ull << (i % 64);
            pc->writer_hint = (uint16_t)i;
            id = (uint16_t)i;
            break;
        }
    }
    pthread_mutex_unlock(&pc->lock);
    return id;
}

void tb_pc_free_writer_id(struct tb_pc *pc, uint16_t id)
{
    if (!id || id > TB_PC_MAX_WRITER_ID)
        return;
    pthread_mutex_lock(&pc->lock);
    pc->writer_ids[id / 64] &= ~(1ull << (id % 64));
    pthread_mutex_unlock(&pc->lock);
}

int tb_pci_wake_locked(struct tb_pc *pc)
{
    int err;

    if (pc->drain_posted || pc->destroying)
        return 0;
    err = tb_loop_post_from_any_thread(pc->loop, tb_pci_drain_task, pc->waker);
    if (err)
        return err;
    pc->drain_posted = true;
    return 0;
}

void tb_pci_op_free(struct pc_op *op)
{
    if (!op)
        return;
    if (op->desc)
        protobuf_c_message_free_unpacked(&op->desc->base, NULL);
    free(op);
}

int tb_pci_post_op(struct tb_pc *pc, struct pc_op *op)
{
    int err;

    pthread_mutex_lock(&pc->lock);
    err = tb_pci_wake_locked(pc);
    if (!err) {
        if (pc->ops_tail)
            pc->ops_tail->next = op;
        else
            pc->ops_head = op;
        pc->ops_tail = op;
    }
    pthread_mutex_unlock(&pc->lock);
    if (err)
        tb_pci_op_free(op);
    return err;
}

static int post_simple(struct tb_pc *pc, enum pc_op_kind kind, uint32_t a, uint64_t b)
{
    struct pc_op *op;

    if (atomic_load(&pc->inert))
        return 0;
    op = calloc(1, sizeof(*op));
    if (!op)
        return -ENOMEM;
    op->kind = kind;
    op->a = a;
    op->b = b;
    return tb_pci_post_op(pc, op);
}

int tb_pc_register_trace_writer(struct tb_pc *pc, uint16_t writer_id, uint32_t target_buffer)
{
    if (!writer_id || writer_id > TB_PC_MAX_WRITER_ID || !target_buffer)
        return -EINVAL;
    return post_simple(pc, PC_OP_REGISTER_WRITER, writer_id, target_buffer);
}

int tb_pc_unregister_trace_writer(struct tb_pc *pc, uint16_t writer_id)
{
    if (!writer_id || writer_id > TB_PC_MAX_WRITER_ID)
        return -EINVAL;
    return post_simple(pc, PC_OP_UNREGISTER_WRITER, writer_id, 0);
}

int tb_pc_notify_stopped(struct tb_pc *pc, uint64_t instance_id)
{
    return post_simple(pc, PC_OP_NOTIFY_STOPPED, 0, instance_id);
}

int tb_pc_ack_flush(struct tb_pc *pc, uint64_t flush_request_id)
{
    int err;

    if (atomic_load(&pc->inert) || !flush_request_id)
        return 0;
    pthread_mutex_lock(&pc->lock);
    err = tb_pci_wake_locked(pc);
    if (!err && flush_request_id > pc->flush_ack)
        pc->flush_ack = flush_request_id;
    pthread_mutex_unlock(&pc->lock);
    return err;
}

int tb_pc_commit(struct tb_pc *pc)
{
    int err;

    if (atomic_load(&pc->inert))
        return 0;
    pthread_mutex_lock(&pc->lock);
    err = tb_pci_wake_locked(pc);
    if (!err)
        pc->commit_wanted = true;
    pthread_mutex_unlock(&pc->lock);
    return err;
}

static void on_commit_reply(struct tb_ipc_client *c, struct tb_ipc_reply *r, void *ctx)
{
    (void)c;
    (void)ctx;
    if (!r->success)
        tb_debug("producer: flush ack (request %llu) not confirmed",
                 (unsigned long long)r->request_id);
}

static size_t varint_size(size_t v)
{
    size_t n = 1;

    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Wire size of @m as a length-delimited field of the request. */
static size_t field_size(const ProtobufCMessage *m)
{
    size_t sz = protobuf_c_message_get_packed_size(m);

    return 1 + varint_size(sz) + sz;
}

static void send_one(struct tb_pc *pc, Perfetto__Protos__CommitDataRequest *req, uint64_t flush_id)
{
    int err;

    if (flush_id) {
        req->has_flush_request_id = true;
        req->flush_request_id = flush_id;
    }
    err = tb_ipc_client_invoke(pc->ipc, "CommitData", &req->base,
                               &perfetto__protos__commit_data_response__descriptor,
                               flush_id ? on_commit_reply : NULL, NULL, -1, NULL);
    pthread_mutex_lock(&pc->lock);
    if (err) {
        pc->stats.commit_send_errors++;
    } else {
        pc->stats.commit_requests++;
        pc->stats.chunks_committed += req->n_chunks_to_move;
        pc->stats.flush_acks += flush_id != 0;
    }
    pthread_mutex_unlock(&pc->lock);
    if (err)
        tb_warn("producer: CommitData (%zu chunks, flush %llu) not sent: %s", req->n_chunks_to_move,
                (unsigned long long)flush_id, strerror(-err));
}

/*
 * Moves first, patches after them, so a patch never reaches the service
 * before the chunk it applies to; the flush id rides on the last request.
 */
static int send_batch(struct tb_pc *pc, const struct tb_arbiter_batch *b, uint64_t flush_id)
{
    Perfetto__Protos__CommitDataRequest__ChunkToPatch__Patch *patches = NULL, **patch_ptrs = NULL;
    Perfetto__Protos__CommitDataRequest__ChunkToPatch *cps = NULL, **cp_ptrs = NULL;
    Perfetto__Protos__CommitDataRequest__ChunksToMove *moves = NULL, **move_ptrs = NULL;
    size_t nm = b ? b->num_commits : 0, ncp = b ? b->num_chunk_patches : 0;
    size_t np = b ? b->num_patches : 0, i, used, start, ncp_ok;
    Perfetto__Protos__CommitDataRequest req;
    int err = -ENOMEM;

    moves = calloc(nm + 1, sizeof(*moves));
    move_ptrs = calloc(nm + 1, sizeof(*move_ptrs));
    cps = calloc(ncp + 1, sizeof(*cps));
    cp_ptrs = calloc(ncp + 1, sizeof(*cp_ptrs));
    patches = calloc(np + 1, sizeof(*patches));
    patch_ptrs = calloc(np + 1, sizeof(*patch_ptrs));
    if (!moves || !move_ptrs || !cps || !cp_ptrs || !patches || !patch_ptrs)
        goto out;
    for (i = 0; i < nm; i++) {
        perfetto__protos__commit_data_request__chunks_to_move__init(&moves[i]);
        moves[i].has_page = moves[i].has_chunk = moves[i].has_target_buffer = true;
        moves[i].page = b->commits[i].page;
        moves[i].chunk = b->commits[i].chunk;
        moves[i].target_buffer = b->commits[i].target_buffer;
        move_ptrs[i] = &moves[i];
    }
    for (i = 0; i < np; i++) {
        perfetto__protos__commit_data_request__chunk_to_patch__patch__init(&patches[i]);
        patches[i].has_offset = patches[i].has_data = true;
        patches[i].offset = b->patches[i].offset;
        patches[i].data.data = (uint8_t *)b->patches[i].data;
        patches[i].data.len = sizeof(b->patches[i].data);
        patch_ptrs[i] = &patches[i];
    }
    for (i = 0, ncp_ok = 0; i < ncp; i++) {
        const struct tb_arbiter_chunk_patches *cp = &b->chunk_patches[i];
        Perfetto__Protos__CommitDataRequest__ChunkToPatch *c = &cps[ncp_ok];

        if (cp->first > np || cp->count > np - cp->first)
            continue; /* cannot happen with a well-formed batch */
        perfetto__protos__commit_data_request__chunk_to_patch__init(c);
        c->has_target_buffer = c->has_writer_id = c->has_chunk_id = true;
        c->target_buffer = cp->target_buffer;
        c->writer_id = cp->writer_id;
        c->chunk_id = cp->chunk_id;
        c->has_has_more_patches = cp->has_more_patches;
        c->has_more_patches = cp->has_more_patches;
        c->n_patches = cp->count;
        c->patches = &patch_ptrs[cp->first];
        cp_ptrs[ncp_ok++] = c;
    }

    /* Greedy split: one pass over moves then patches, sending as we fill. */
    perfetto__protos__commit_data_request__init(&req);
    used = 0;
    start = 0;
    for (i = 0; i < nm; i++) {
        size_t sz = field_size(&moves[i].base);

        if ((used + sz > PC_COMMIT_BUDGET || i - start >= PC_COMMIT_MAX_ENTRIES) && i > start) {
            req.n_chunks_to_move = i - start;
            req.chunks_to_move = &move_ptrs[start];
            send_one(pc, &req, 0);
            perfetto__protos__commit_data_request__init(&req);
            start = i;
            used = 0;
        }
        used += sz;
    }
    req.n_chunks_to_move = nm - start;
    req.chunks_to_move = &move_ptrs[start];
    start = 0;
    for (i = 0; i < ncp_ok; i++) {
        size_t sz = field_size(&cp_ptrs[i]->base);

        size_t entries = req.n_chunks_to_move + (i - start);

        if ((used + sz > PC_COMMIT_BUDGET || entries >= PC_COMMIT_MAX_ENTRIES) && entries) {
            req.n_chunks_to_patch = i - start;
            req.chunks_to_patch = &cp_ptrs[start];
            send_one(pc, &req, 0);
            perfetto__protos__commit_data_request__init(&req);
            start = i;
            used = 0;
        }
        used += sz;
    }
    req.n_chunks_to_patch = ncp_ok - start;
    req.chunks_to_patch = &cp_ptrs[start];
    if (req.n_chunks_to_move || req.n_chunks_to_patch || flush_id)
        send_one(pc, &req, flush_id);
    err = 0;
out:
    free(moves);
    free(move_ptrs);
    free(cps);
    free(cp_ptrs);
    free(patches);
    free(patch_ptrs);
    return err;
}

void tb_pci_send_commits(struct tb_pc *pc, uint64_t flush_request_id)
{
    struct tb_arbiter_batch *batch = NULL;
    int err;

    if (pc->ipc_smb) {
        err = tb_arbiter_take_commits(pc->ipc_smb->arb, &batch);
        if (err) {
            tb_warn("producer: cannot take commit batch: %s", strerror(-err));
            batch = NULL;
        }
    }
    if (!batch && !flush_request_id)
        return;
    if (!pc->ipc || pc->state < PC_INITIALIZING) {
        /* The chunks stay Complete in the SMB; the service may scrape them. */
        if (batch) {
            pthread_mutex_lock(&pc->lock);
            pc->stats.commit_send_errors++;
            pthread_mutex_unlock(&pc->lock);
        }
    } else if (send_batch(pc, batch, flush_request_id)) {
        tb_err("producer: out of memory building CommitData (%zu chunks lost)",
               batch ? batch->num_commits : 0);
    }
    tb_arbiter_batch_free(batch);
}

static void run_op(struct tb_pc *pc, struct pc_op *op)
{
    switch (op->kind) {
    case PC_OP_REGISTER_DS:
        tb_pci_register_pending_ds(pc);
        break;
    case PC_OP_UPDATE_DS:
        tb_pci_update_ds(pc, op->desc);
        op->desc = NULL;
        break;
    case PC_OP_REGISTER_WRITER: {
        Perfetto__Protos__RegisterTraceWriterRequest r =
            PERFETTO__PROTOS__REGISTER_TRACE_WRITER_REQUEST__INIT;

        r.has_trace_writer_id = r.has_target_buffer = true;
        r.trace_writer_id = op->a;
        r.target_buffer = (uint32_t)op->b;
        tb_pci_invoke_drop(pc, "RegisterTraceWriter", &r.base);
        break;
    }
    case PC_OP_UNREGISTER_WRITER: {
        Perfetto__Protos__UnregisterTraceWriterRequest r =
            PERFETTO__PROTOS__UNREGISTER_TRACE_WRITER_REQUEST__INIT;

        r.has_trace_writer_id = true;
        r.trace_writer_id = op->a;
        /*
         * The writer's last chunks were queued when it was destroyed: they
         * must reach the service before it forgets the writer, or its final
         * packet is split from its sequence and lost.
         */
        tb_pci_send_commits(pc, 0);
        tb_pci_invoke_drop(pc, "UnregisterTraceWriter", &r.base);
        break;
    }
    case PC_OP_NOTIFY_STOPPED: {
        Perfetto__Protos__NotifyDataSourceStoppedRequest r =
            PERFETTO__PROTOS__NOTIFY_DATA_SOURCE_STOPPED_REQUEST__INIT;

        /* The instance's last chunks must reach the service before this. */
        tb_pci_send_commits(pc, 0);
        r.has_data_source_id = true;
        r.data_source_id = op->b;
        tb_pci_invoke_drop(pc, "NotifyDataSourceStopped", &r.base);
        break;
    }
    }
}

void tb_pci_drain(struct tb_pc *pc)
{
    struct pc_op *ops, *op;
    uint64_t flush_ack;
    bool commit;

    pthread_mutex_lock(&pc->lock);
    ops = pc->ops_head;
    pc->ops_head = pc->ops_tail = NULL;
    flush_ack = pc->flush_ack;
    pc->flush_ack = 0;
    commit = pc->commit_wanted;
    pc->commit_wanted = false;
    pc->drain_posted = false;
    pthread_mutex_unlock(&pc->lock);

    while ((op = ops)) {
        ops = op->next;
        run_op(pc, op);
        tb_pci_op_free(op);
    }
    if (commit || flush_ack)
        tb_pci_send_commits(pc, flush_ack);
}

void tb_pci_drain_task(void *ctx)
{
    struct pc_waker *w = ctx;

    if (!w->pc) {
        free(w); /* the client was destroyed while this task was queued */
        return;
    }
    tb_pci_drain(w->pc);
}
