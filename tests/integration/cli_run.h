/*
 * cli_run.h - test helper shared by the tracebpf integration tests: run the
 * built tracebpf binary with arguments and capture its exit code, stdout
 * and stderr. Header-only so each test stays one executable.
 */
#ifndef TB_TESTS_CLI_RUN_H
#define TB_TESTS_CLI_RUN_H

#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct cli_result {
    int status; /* exit code, or 128 + signal */
    char *out;  /* malloc'd, NUL-terminated; free with cli_result_free() */
    char *err;
};

extern char **environ;

static inline const char *cli_binary(void)
{
    static char path[PATH_MAX];
    const char *dir = getenv("TB_TEST_BUILD_DIR");

    snprintf(path, sizeof(path), "%s/consumer/tracebpf", dir ? dir : ".");
    return path;
}

static inline char *cli_slurp(const char *path)
{
    FILE *f = fopen(path, "re");
    char *buf;
    long n;

    if (!f)
        return strdup("");
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    n = (long)fread(buf, 1, (size_t)n, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/*
 * cli_run() - run "tracebpf argv..." (argv NULL-terminated, without the
 * program name) with stdin from /dev/null. Return: 0 or -1 on spawn failure.
 */
static inline int cli_run(struct cli_result *r, const char *const *args)
{
    char out_path[] = "/tmp/cli_run_outXXXXXX", err_path[] = "/tmp/cli_run_errXXXXXX";
    posix_spawn_file_actions_t fa;
    char *argv[64];
    int ofd, efd, st, i;
    pid_t pid;

    memset(r, 0, sizeof(*r));
    r->status = -1;
    argv[0] = (char *)cli_binary();
    for (i = 0; args[i] && i < 62; i++)
        argv[i + 1] = (char *)args[i];
    argv[i + 1] = NULL;
    ofd = mkstemp(out_path);
    efd = mkstemp(err_path);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, ofd, 1);
    posix_spawn_file_actions_adddup2(&fa, efd, 2);
    if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ)) {
        posix_spawn_file_actions_destroy(&fa);
        close(ofd);
        close(efd);
        unlink(out_path);
        unlink(err_path);
        r->out = strdup("");
        r->err = strdup("");
        return -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    close(ofd);
    close(efd);
    waitpid(pid, &st, 0);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r->out = cli_slurp(out_path);
    r->err = cli_slurp(err_path);
    unlink(out_path);
    unlink(err_path);
    return 0;
}

static inline void cli_result_free(struct cli_result *r)
{
    free(r->out);
    free(r->err);
}

/* Number of lines in @s (a last line without '\n' counts). */
static inline int cli_count_lines(const char *s)
{
    int n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

#endif /* TB_TESTS_CLI_RUN_H */
