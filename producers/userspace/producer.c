/* producer.c - connection to the service (being written). */
#include <errno.h>

#include "producers/userspace/lib_internal.h"

int tbl_producer_start(const struct tbl_producer_opts *o)
{
    return -ENOSYS;
}
void tbl_producer_stop(void)
{
}
int tbl_producer_flush(uint32_t timeout_ms)
{
    return -ENOTCONN;
}
bool tbl_producer_active(void)
{
    return false;
}
void tbl_producer_forget_after_fork(void)
{
}
