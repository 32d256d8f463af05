/*
 * cli_connect.c - connecting the daemon-facing commands to the consumer
 * socket, with one clear line for each way it can fail.
 */
#include "consumer/cli_connect.h"

#include "common/consumer_client.h"
#include "common/ipc_sock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define CONNECT_TIMEOUT_MS 3000

int tb_cli_connect(const char *cmd, struct tb_cc **out)
{
    const char *name = tb_ipc_sock_default_name(TB_IPC_SOCK_CONSUMER);
    int err = tb_cc_connect(NULL, CONNECT_TIMEOUT_MS, out);

    if (err == -ENOENT || err == -ECONNREFUSED)
        fprintf(stderr,
                "tracebpf %s: no traced-bpf daemon answered on %s (start it: "
                "systemctl start traced-bpf, or run traced-bpf)\n",
                cmd, name);
    else if (err == -EACCES)
        fprintf(stderr,
                "tracebpf %s: permission denied on %s: run as root or join group tracebpf\n", cmd,
                name);
    else if (err)
        fprintf(stderr, "tracebpf %s: cannot connect to %s: %s\n", cmd, name, strerror(-err));
    return err;
}
