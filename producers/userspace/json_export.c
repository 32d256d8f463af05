/* json_export.c - Chrome JSON (being written). */
#include <errno.h>

#include "producers/userspace/lib_internal.h"

int tbl_json_export(const uint8_t *trace, size_t len, const char *path)
{
    return -ENOSYS;
}
