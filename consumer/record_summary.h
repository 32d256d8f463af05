/*
 * record_summary.h - the end-of-recording report of "tracebpf record": reads
 * the finished trace once (streaming) and says what it holds per source and
 * every loss the trace itself records, with its source and unit.
 */
#ifndef TB_CONSUMER_RECORD_SUMMARY_H
#define TB_CONSUMER_RECORD_SUMMARY_H

#include <stdint.h>
#include <stdio.h>

struct tb_record_summary;

/*
 * tb_record_summary_scan() - read @path packet by packet and tally it.
 * @out: receives the tally; free with tb_record_summary_free().
 * Return: 0, or negative errno when the file cannot be read or is malformed
 * (the tally of what came before is still returned in @out when not NULL).
 */
int tb_record_summary_scan(const char *path, struct tb_record_summary **out);

/*
 * tb_record_summary_print() - per-source counts, then "losses:" with one line
 * per non-zero loss counter, or "no data lost" when all are zero.
 * @f: where to print (stdout for the CLI).
 */
void tb_record_summary_print(const struct tb_record_summary *s, FILE *f);

/* tb_record_summary_losses() - how many loss lines print() would write. */
unsigned int tb_record_summary_losses(const struct tb_record_summary *s);

/* tb_record_summary_packets() - packets read from the file. */
uint64_t tb_record_summary_packets(const struct tb_record_summary *s);

/* tb_record_summary_free() - accepts NULL. */
void tb_record_summary_free(struct tb_record_summary *s);

#endif /* TB_CONSUMER_RECORD_SUMMARY_H */
