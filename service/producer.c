/*
 * producer.c - the core's handling of producer requests: handshake, data
 * source registry, trace writers, the lazily created SMB, CommitData (move
 * chunks into central buffers, patches, flush acks) and scraping.
 *
 * Everything a producer sends is hostile: page and chunk indices, chunk
 * headers, target buffers and patches are checked here or by the trace
 * buffer, and bad entries are dropped and counted without touching other
 * producers' data.
 */
#include "service/svc_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/shm.h"
#include "service/trace_buffer.h"

bool tb_svc_producer_is_initialized(const struct tb_svc_producer *p)
{
    return p->initialized;
}

uint16_t tb_svc_producer_id(const struct tb_svc_producer *p)
{
    return p->id;
}

void tb_svc_producer_kick(struct tb_svc_producer *p, const char *why)
{
    if (p->kicked)
        return;
    p->kicked = true;
    tb_warn("svc: disconnecting producer %u (%s, pid %d): %s", p->id, p->name ? p->name : "?",
            (int)p->pid, why);
    if (p->ops && p->ops->kick)
        p->ops->kick(p->ctx, why);
}

int tb_svc_producer_send(struct tb_svc_producer *p,
                         const Perfetto__Protos__GetAsyncCommandResponse *cmd, int fd)
{
    int err;

    if (p->kicked)
        return -ENOTCONN;
    err = p->ops->send_command(p->ctx, cmd, fd);
    if (err)
        tb_svc_producer_kick(p, "cannot queue a command");
    return err;
}

int tb_svc_producer_initialize(struct tb_svc_producer *p,
                               const Perfetto__Protos__InitializeConnectionRequest *req)
{
    if (p->initialized)
        return -EALREADY;
    free(p->name);
    p->name = strdup(req->producer_name && req->producer_name[0] ? req->producer_name : "unnamed");
    if (!p->name)
        return -ENOMEM;
    if (req->has_shared_memory_size_hint_bytes)
        p->shm_size_hint = req->shared_memory_size_hint_bytes;
    if (req->has_shared_memory_page_size_hint_bytes)
        p->page_size_hint = req->shared_memory_page_size_hint_bytes;
    /* Our default is on: it is what keeps the tail of SDK writers. */
    p->scraping = !(
        req->has_smb_scraping_mode &&
        req->smb_scraping_mode ==
            PERFETTO__PROTOS__INITIALIZE_CONNECTION_REQUEST__PRODUCER_SMBSCRAPING_MODE__SMB_SCRAPING_DISABLED);
    p->initialized = true;
    tb_info("svc: producer %u \"%s\" connected (pid %d, uid %u)", p->id, p->name, (int)p->pid,
            (unsigned)p->uid);
    return 0;
}

int tb_svc_producer_adopt_smb(struct tb_svc_producer *p, int fd)
{
    size_t page = p->page_size_hint, size;
    struct stat st;
    int err;

    if (!p->initialized || p->shm) {
        err = -EALREADY;
        goto out;
    }
    err = tb_shm_fd_is_sealed(fd);
    if (err <= 0) {
        err = err ? err : -EPERM;
        goto out;
    }
    if (fstat(fd, &st) < 0) {
        err = -errno;
        goto out;
    }
    /* Both values must survive validation as they are; a zero hint does not. */
    size = st.st_size > 0 ? (size_t)st.st_size : 0;
    if (!size || !page || !tb_shm_validate_sizes(&size, &page) || size != (size_t)st.st_size ||
        page != p->page_size_hint || size > p->core->limits.max_smb_bytes) {
        err = -EINVAL;
        goto out;
    }
    err = tb_shm_attach(fd, page, &p->shm);
    fd = -1; /* closed by tb_shm_attach on failure */
    if (err)
        goto out;
    p->smb_from_producer = true;
    tb_info("svc: producer %u uses its own SMB (%zu bytes, %zu-byte pages)", p->id, size, page);
    /*
     * Like traced, announce it at once: SetupTracing (no fd) goes out as
     * soon as the producer opens its command stream, before any session.
     */
    return tb_svc_producer_ensure_smb(p, NULL);
out:
    if (fd >= 0)
        close(fd);
    tb_info("svc: producer %u: its own SMB is refused (%s), it gets one of ours", p->id,
            strerror(-err));
    return err;
}

const struct tb_svc_ds *tb_svc_producer_find_ds(const struct tb_svc_producer *p, const char *name)
{
    for (size_t i = 0; i < p->nds; i++)
        if (!strcmp(p->ds[i].name, name))
            return &p->ds[i];
    return NULL;
}

static int fill_ds(struct tb_svc_ds *d, const Perfetto__Protos__DataSourceDescriptor *desc)
{
    size_t len = protobuf_c_message_get_packed_size(&desc->base);
    uint8_t *buf = malloc(len ? len : 1);

    if (!buf)
        return -ENOMEM;
    protobuf_c_message_pack(&desc->base, buf);
    free(d->desc);
    d->desc = buf;
    d->desc_len = len;
    d->id = desc->has_id ? desc->id : 0;
    d->will_notify_on_start = desc->has_will_notify_on_start && desc->will_notify_on_start;
    d->will_notify_on_stop = desc->has_will_notify_on_stop && desc->will_notify_on_stop;
    d->handles_incremental_state_clear =
        desc->has_handles_incremental_state_clear && desc->handles_incremental_state_clear;
    d->no_flush = desc->has_no_flush && desc->no_flush;
    return 0;
}

int tb_svc_producer_register_ds(struct tb_svc_producer *p,
                                const Perfetto__Protos__DataSourceDescriptor *desc)
{
    struct tb_svc_ds *nds, *d;
    int err;

    if (!desc || !desc->name || !desc->name[0])
        return -EINVAL;
    if (p->nds >= 1024)
        return -ENOSPC;
    for (size_t i = 0; i < p->nds; i++) {
        if (!strcmp(p->ds[i].name, desc->name))
            return -EEXIST;
        if (desc->has_id && desc->id && p->ds[i].id == desc->id)
            return -EEXIST;
    }
    nds = realloc(p->ds, (p->nds + 1) * sizeof(*nds));
    if (!nds)
        return -ENOMEM;
    p->ds = nds;
    d = &p->ds[p->nds];
    memset(d, 0, sizeof(*d));
    d->name = strdup(desc->name);
    if (!d->name)
        return -ENOMEM;
    err = fill_ds(d, desc);
    if (err) {
        free(d->name);
        return err;
    }
    p->nds++;
    p->core->num_data_sources++;
    p->core->counters.data_sources_seen++;
    tb_debug("svc: producer %u registered data source \"%s\"", p->id, d->name);
    tb_svc_sessions_on_ds_registered(p->core, p, d);
    return 0;
}

int tb_svc_producer_update_ds(struct tb_svc_producer *p,
                              const Perfetto__Protos__DataSourceDescriptor *desc)
{
    if (!desc || !desc->has_id || !desc->id)
        return -EINVAL;
    for (size_t i = 0; i < p->nds; i++) {
        if (p->ds[i].id != desc->id)
            continue;
        if (desc->name && strcmp(desc->name, p->ds[i].name))
            return -EINVAL; /* a data source cannot change its name */
        return fill_ds(&p->ds[i], desc);
    }
    return -ENOENT;
}

int tb_svc_producer_unregister_ds(struct tb_svc_producer *p, const char *name)
{
    for (size_t i = 0; name && i < p->nds; i++) {
        if (strcmp(p->ds[i].name, name))
            continue;
        tb_svc_sessions_on_ds_unregistered(p->core, p, name);
        free(p->ds[i].name);
        free(p->ds[i].desc);
        p->ds[i] = p->ds[--p->nds];
        p->core->num_data_sources--;
        return 0;
    }
    return -ENOENT;
}

static bool buffer_allowed(const struct tb_svc_producer *p, uint16_t buffer_id)
{
    for (size_t i = 0; i < p->nallowed; i++)
        if (p->allowed[i] == buffer_id)
            return true;
    return false;
}

int tb_svc_producer_allow_buffer(struct tb_svc_producer *p, uint16_t buffer_id)
{
    uint16_t *n;

    if (buffer_allowed(p, buffer_id))
        return 0;
    n = realloc(p->allowed, (p->nallowed + 1) * sizeof(*n));
    if (!n)
        return -ENOMEM;
    p->allowed = n;
    p->allowed[p->nallowed++] = buffer_id;
    return 0;
}

int tb_svc_producer_register_writer(struct tb_svc_producer *p, uint32_t writer_id,
                                    uint32_t target_buffer)
{
    if (writer_id < TB_SHM_MIN_WRITER_ID || writer_id > TB_SHM_MAX_WRITER_ID ||
        target_buffer == 0 || target_buffer > UINT16_MAX)
        return -EINVAL;
    if (!p->writer_buf) {
        p->writer_buf = calloc(TB_SHM_MAX_WRITER_ID + 1, sizeof(uint16_t));
        if (!p->writer_buf)
            return -ENOMEM;
    }
    p->writer_buf[writer_id] = (uint16_t)target_buffer;
    return 0;
}

int tb_svc_producer_unregister_writer(struct tb_svc_producer *p, uint32_t writer_id)
{
    struct tb_svc_list *pos;

    if (writer_id < TB_SHM_MIN_WRITER_ID || writer_id > TB_SHM_MAX_WRITER_ID || !p->writer_buf)
        return -EINVAL;
    p->writer_buf[writer_id] = 0;
    /* The id may be handed out again: a writer starting over gets a new sequence. */
    for (pos = p->core->sessions.next; pos != &p->core->sessions; pos = pos->next)
        tb_svc_session_seq_unregister(tb_svc_container_of(pos, struct tb_svc_session, node), p->id,
                                      (uint16_t)writer_id);
    return 0;
}

int tb_svc_producer_ensure_smb(struct tb_svc_producer *p, const Perfetto__Protos__TraceConfig *cfg)
{
    Perfetto__Protos__GetAsyncCommandResponse cmd =
        PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__INIT;
    Perfetto__Protos__GetAsyncCommandResponse__SetupTracing st =
        PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__SETUP_TRACING__INIT;
    size_t size = p->shm_size_hint, page = p->page_size_hint;
    int err;

    if (p->smb_announced)
        return 0;
    if (p->shm)
        goto announce;
    for (size_t i = 0; cfg && i < cfg->n_producers; i++) {
        const Perfetto__Protos__TraceConfig__ProducerConfig *pc = cfg->producers[i];

        if (!pc->producer_name || !p->name || strcmp(pc->producer_name, p->name))
            continue;
        if (pc->has_shm_size_kb && pc->shm_size_kb)
            size = (size_t)pc->shm_size_kb * 1024;
        if (pc->has_page_size_kb && pc->page_size_kb)
            page = (size_t)pc->page_size_kb * 1024;
    }
    if (!tb_shm_validate_sizes(&size, &page))
        tb_debug("svc: producer %u asked for an invalid SMB geometry, using the default", p->id);
    if (size > p->core->limits.max_smb_bytes) {
        size = TB_SHM_DEFAULT_SIZE;
        page = TB_SHM_DEFAULT_PAGE_SIZE;
    }
    err = tb_shm_create(size, page, &p->shm);
    if (err) {
        tb_err("svc: cannot create the SMB of producer %u (%zu bytes): %s", p->id, size,
               strerror(-err));
        return err;
    }
announce:
    st.has_shared_buffer_page_size_kb = true;
    st.shared_buffer_page_size_kb = (uint32_t)(p->shm->page_size / 1024);
    cmd.cmd_case = PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_SETUP_TRACING;
    cmd.setup_tracing = &st;
    /* The producer already maps its own SMB: SetupTracing then carries no fd. */
    err = tb_svc_producer_send(p, &cmd, p->smb_from_producer ? -1 : p->shm->fd);
    if (!err)
        p->smb_announced = true;
    return err;
}

/*
 * Copies chunk @c of @p (already located in the SMB) into @buf. The header
 * is read once into locals and the payload copied out before the trace
 * buffer parses anything, so a producer scribbling concurrently can only
 * hurt its own data.
 */
static int copy_chunk(struct tb_svc_producer *p, struct tb_svc_session *s,
                      struct tb_svc_buffer *buf, const struct tb_shm_chunk *c, bool complete)
{
    const struct tb_shm_chunk_header *hdr = tb_shm_chunk_hdr(c);
    uint32_t chunk_id = __atomic_load_n(&hdr->chunk_id, __ATOMIC_RELAXED);
    uint16_t writer_id = __atomic_load_n(&hdr->writer_id, __ATOMIC_RELAXED);
    uint16_t packets = tb_shm_chunk_packets_load(hdr);
    uint32_t len = tb_shm_chunk_payload_size(c);
    uint16_t key_prod, key_writer;
    struct tb_svc_seq *seq;

    if (writer_id < TB_SHM_MIN_WRITER_ID || writer_id > TB_SHM_MAX_WRITER_ID ||
        len > TB_SHM_MAX_PAGE_SIZE)
        return -EINVAL;
    if (!complete) {
        /* A scraped chunk: its last record may be half written. */
        if (tb_shm_packets_count(packets) < 2)
            return -EAGAIN;
        packets =
            tb_shm_packets_make(tb_shm_packets_count(packets),
                                tb_shm_packets_flags(packets) &
                                    ~(TB_SHM_FLAG_LAST_CONTINUES | TB_SHM_FLAG_NEEDS_PATCHING));
    }
    memcpy(p->core->scratch, tb_shm_chunk_payload(c), len);
    seq = tb_svc_session_seq(s, p->id, writer_id, chunk_id, complete, (int32_t)p->uid,
                             (int32_t)p->pid);
    if (!seq)
        return -ENOMEM;
    tb_svc_seq_tbuf_key(seq->seq_id, &key_prod, &key_writer);
    return tb_tbuf_copy_chunk(buf->tbuf, key_prod, key_writer, chunk_id, packets, p->core->scratch,
                              len, complete);
}

/* Target buffer check shared by commits and patches. */
static struct tb_svc_session *writable_buffer(struct tb_svc_producer *p, uint32_t target,
                                              struct tb_svc_buffer **buf)
{
    if (!target || target > UINT16_MAX || !buffer_allowed(p, (uint16_t)target))
        return NULL;
    return tb_svc_core_find_buffer(p->core, (uint16_t)target, buf);
}

static void move_chunk(struct tb_svc_producer *p,
                       const Perfetto__Protos__CommitDataRequest__ChunksToMove *m)
{
    struct tb_svc_buffer *buf = NULL;
    struct tb_svc_session *s;
    struct tb_shm_chunk c;
    uint16_t wid;
    int err;

    if (!p->shm || !m->has_page || !m->has_chunk)
        return;
    s = writable_buffer(p, m->has_target_buffer ? m->target_buffer : 0, &buf);
    err = tb_shm_try_acquire_chunk_for_reading(&p->shm->abi, m->page, m->chunk, &c);
    if (err) {
        /* Bad index or a chunk that is not Complete: nothing to free. */
        if (s)
            s->chunks_discarded++;
        tb_debug("svc: producer %u committed page %u chunk %u: %s", p->id, m->page, m->chunk,
                 strerror(-err));
        return;
    }
    wid = __atomic_load_n(&tb_shm_chunk_hdr(&c)->writer_id, __ATOMIC_RELAXED);
    if (s && p->writer_buf && wid <= TB_SHM_MAX_WRITER_ID && p->writer_buf[wid] &&
        p->writer_buf[wid] != m->target_buffer)
        s = NULL; /* a registered writer must stick to its buffer */
    if (s) {
        err = copy_chunk(p, s, buf, &c, true);
        if (err)
            s->chunks_discarded++;
    }
    /* Free the chunk whatever happened, or the producer runs dry. */
    tb_shm_release_chunk_as_free(&p->shm->abi, m->page, m->chunk);
}

static void patch_chunk(struct tb_svc_producer *p,
                        const Perfetto__Protos__CommitDataRequest__ChunkToPatch *cp)
{
    struct tb_tbuf_patch patches[TB_SHM_MAX_PATCHES_PER_CHUNK];
    struct tb_svc_buffer *buf = NULL;
    uint16_t key_prod, key_writer;
    struct tb_svc_session *s;
    struct tb_svc_seq *seq;
    int err;

    s = writable_buffer(p, cp->has_target_buffer ? cp->target_buffer : 0, &buf);
    if (!s || !cp->has_writer_id || cp->writer_id < TB_SHM_MIN_WRITER_ID ||
        cp->writer_id > TB_SHM_MAX_WRITER_ID || !cp->has_chunk_id ||
        cp->n_patches > TB_SHM_MAX_PATCHES_PER_CHUNK) {
        if (s)
            s->patches_discarded += cp->n_patches ? cp->n_patches : 1;
        return;
    }
    for (size_t i = 0; i < cp->n_patches; i++) {
        const Perfetto__Protos__CommitDataRequest__ChunkToPatch__Patch *pt = cp->patches[i];

        patches[i].offset = pt->has_offset ? pt->offset : UINT32_MAX;
        patches[i].data = pt->has_data ? pt->data.data : NULL;
        patches[i].size = pt->has_data ? pt->data.len : 0;
    }
    /*
     * The buffer counts failed patches itself; nothing else to undo here. A
     * writer with no live sequence has nothing stored: sequence 0's key is
     * never used, so the patches fail and are counted like any other miss.
     */
    seq = tb_svc_session_seq_find(s, p->id, (uint16_t)cp->writer_id);
    tb_svc_seq_tbuf_key(seq ? seq->seq_id : 0, &key_prod, &key_writer);
    err = tb_tbuf_apply_patches(buf->tbuf, key_prod, key_writer, cp->chunk_id, patches,
                                cp->n_patches, cp->has_has_more_patches && cp->has_more_patches);
    if (err)
        tb_debug("svc: producer %u patch of writer %u chunk %u: %s", p->id, cp->writer_id,
                 cp->chunk_id, strerror(-err));
}

int tb_svc_producer_commit(struct tb_svc_producer *p,
                           const Perfetto__Protos__CommitDataRequest *req)
{
    if (req->n_chunks_to_move + req->n_chunks_to_patch > p->core->limits.max_commit_entries) {
        tb_svc_producer_kick(p, "CommitData with too many entries");
        return -EPROTO;
    }
    /* Moves first, so a chunk can be moved and patched in one request. */
    for (size_t i = 0; i < req->n_chunks_to_move; i++)
        move_chunk(p, req->chunks_to_move[i]);
    for (size_t i = 0; i < req->n_chunks_to_patch; i++)
        patch_chunk(p, req->chunks_to_patch[i]);
    if (req->has_flush_request_id && req->flush_request_id)
        tb_svc_flush_ack(p->core, p->id, req->flush_request_id);
    return 0;
}

void tb_svc_producer_scrape(struct tb_svc_producer *p, struct tb_svc_session *only)
{
    const struct tb_shm_abi *abi;

    if (!p->shm || !p->writer_buf)
        return; /* only registered writers are scraped */
    abi = &p->shm->abi;
    for (size_t page = 0; page < abi->num_pages; page++) {
        int layout = tb_shm_page_layout(abi, page);
        unsigned nchunks = layout > 0 ? tb_shm_layout_num_chunks((unsigned)layout) : 0;

        for (size_t ch = 0; ch < nchunks; ch++) {
            int state = tb_shm_chunk_state(abi, page, ch);
            struct tb_svc_buffer *buf = NULL;
            struct tb_svc_session *s;
            struct tb_shm_chunk c;
            uint16_t wid;

            if (state != TB_SHM_CHUNK_BEING_WRITTEN && state != TB_SHM_CHUNK_COMPLETE)
                continue;
            if (tb_shm_get_chunk(abi, page, ch, &c))
                continue;
            wid = __atomic_load_n(&tb_shm_chunk_hdr(&c)->writer_id, __ATOMIC_RELAXED);
            if (wid < TB_SHM_MIN_WRITER_ID || wid > TB_SHM_MAX_WRITER_ID || !p->writer_buf[wid])
                continue;
            s = writable_buffer(p, p->writer_buf[wid], &buf);
            if (!s || (only && s != only))
                continue;
            copy_chunk(p, s, buf, &c, state == TB_SHM_CHUNK_COMPLETE);
        }
    }
}
