# tracebpf CLI (consumer/): unit tests over tb_consumer.
tb_unit_test(NAME cli_util_test SOURCES unit/cli_util_test.c LIBS tb_consumer)
tb_unit_test(NAME cli_open_test SOURCES unit/cli_open_test.c LIBS tb_consumer)
tb_unit_test(NAME cli_textproto_test SOURCES unit/cli_textproto_test.c LIBS tb_consumer)
tb_unit_test(NAME cli_trace_reader_test SOURCES unit/cli_trace_reader_test.c LIBS tb_consumer)
