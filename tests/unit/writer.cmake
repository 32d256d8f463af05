# Streaming packet writer (common/pb_writer) and the per-thread TraceWriter
# over shared-memory chunks (common/trace_writer).
tb_unit_test(NAME pbw_encode_test SOURCES unit/pbw_encode_test.c LIBS tb_common)
tb_unit_test(NAME pbw_window_test SOURCES unit/pbw_window_test.c LIBS tb_common)
tb_unit_test(NAME trace_writer_test SOURCES unit/trace_writer_test.c unit/tw_fake_svc.c
             LIBS tb_common)
tb_unit_test(NAME trace_writer_drop_test SOURCES unit/trace_writer_drop_test.c unit/tw_fake_svc.c
             LIBS tb_common)
