/*
 * record_run.h - the service side of "tracebpf record": find a service (the
 * daemon, or an embedded one when none answers), check the requested data
 * sources are offered, run the session with progress and Ctrl-C handling,
 * and leave the trace at its final path only once it is whole.
 */
#ifndef TB_CONSUMER_RECORD_RUN_H
#define TB_CONSUMER_RECORD_RUN_H

#include <stdbool.h>

#include "perfetto/config/trace_config.pb-c.h"

/*
 * tb_record_run() - record @cfg into @out_path.
 * @cfg: the config (borrowed). write_into_file in it selects streaming: the
 *       service writes into the file while recording.
 * @out_path: final path; the trace is written to "@out_path.tmp" and renamed
 *            when complete, and the .tmp is removed on failure. When
 *            ReadBuffers fails (60 s without a reply, or the connection
 *            lost) after some packets arrived, they are kept as
 *            "@out_path.partial" and @out_path is not created.
 * Prints warnings and errors on stderr (one line each), progress on stderr
 * when it is a terminal, and the summary on stdout.
 * Return: a TB_CLI_EXIT_* code.
 * Context: installs SIGINT/SIGTERM handlers for the duration of the call.
 */
int tb_record_run(const Perfetto__Protos__TraceConfig *cfg, const char *out_path);

#endif /* TB_CONSUMER_RECORD_RUN_H */
