/*
 * probe_check.h - the start-up check of the kernel producer: names every
 * missing piece plainly (tracefs not mounted, no kernel BTF, lockdown,
 * missing capabilities, events this kernel does not have) instead of
 * leaving the user with a libbpf error dump.
 */
#ifndef TB_PRODUCERS_FTRACE_PROBE_CHECK_H
#define TB_PRODUCERS_FTRACE_PROBE_CHECK_H

#include <stddef.h>

/*
 * tb_probe_check() - check what recording @events needs.
 * @events: "group/name" or "name" strings (borrowed), BPF and ftrace alike.
 * @msg, @len: caller buffer receiving one line per problem found (empty
 *             string when all is well); each line says how to fix it.
 * Return: 0 when everything needed is there, else the negative errno of the
 * first problem (-ENODEV tracefs, -ENOTSUP BTF, -EPERM lockdown or
 * capabilities, -ENOENT unknown event).
 */
int tb_probe_check(const char *const *events, size_t nr_events, char *msg, size_t len);

#endif /* TB_PRODUCERS_FTRACE_PROBE_CHECK_H */
