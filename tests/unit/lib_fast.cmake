# libtracebpf's fast path (producers/userspace/te_fast.h) decodes like the
# general track-event encoder.
tb_unit_test(NAME lib_fast_test SOURCES unit/lib_fast_test.c LIBS tracebpf_static)
