# libtracebpf (producers/userspace): the API, the track-event encoder and the
# standalone recorder, round-tripped through real trace files.
tb_unit_test(NAME lib_standalone_test SOURCES unit/lib_standalone_test.c LIBS tracebpf_static)
