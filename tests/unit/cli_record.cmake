# tracebpf record: flags -> TraceConfig and config loading (record_config.c).
tb_unit_test(NAME cli_record_config_test SOURCES unit/cli_record_config_test.c LIBS tb_consumer)
