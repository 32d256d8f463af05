# Shared-memory ABI: state machine, SMB lifecycle, concurrent chunk
# acquisition, the untrusted-chunk reader and the producer arbiter.
tb_unit_test(NAME shm_abi_test SOURCES unit/shm_abi_test.c LIBS tb_common)
tb_unit_test(NAME shm_create_test SOURCES unit/shm_create_test.c LIBS tb_common)
tb_unit_test(NAME shm_concurrency_test SOURCES unit/shm_concurrency_test.c LIBS tb_common)
tb_unit_test(NAME shm_chunk_reader_test SOURCES unit/shm_chunk_reader_test.c LIBS tb_common)
tb_unit_test(NAME shm_arbiter_test SOURCES unit/shm_arbiter_test.c LIBS tb_common)
