/*
 * tb_lttng_tp.h - the LTTng-UST tracepoint provider the userspace benchmark
 * fires: one event carrying a 64-bit sequence number, the payload size of the
 * other rows of the table. scripts/bench.sh compiles the provider instance
 * (this header with LTTNG_UST_TRACEPOINT_CREATE_PROBES) in a temporary
 * directory; nothing LTTng generates is kept in the tree.
 */
#undef LTTNG_UST_TRACEPOINT_PROVIDER
#define LTTNG_UST_TRACEPOINT_PROVIDER tb_bench

#undef LTTNG_UST_TRACEPOINT_INCLUDE
#define LTTNG_UST_TRACEPOINT_INCLUDE "tb_lttng_tp.h"

#if !defined(TB_LTTNG_TP_H) || defined(LTTNG_UST_TRACEPOINT_HEADER_MULTI_READ)
#define TB_LTTNG_TP_H

#include <stdint.h>
#include <lttng/tracepoint.h>

LTTNG_UST_TRACEPOINT_EVENT(tb_bench, event, LTTNG_UST_TP_ARGS(uint64_t, seq),
                           LTTNG_UST_TP_FIELDS(lttng_ust_field_integer(uint64_t, seq, seq)))

#endif /* TB_LTTNG_TP_H */

#include <lttng/tracepoint-event.h>
