# tracebpf CLI (consumer/): tests that run the built binary.
tb_unit_test(NAME cli_main_test SOURCES integration/cli_main_test.c LIBS tb_consumer
             LABELS integration)
add_dependencies(cli_main_test tracebpf_cli)
tb_unit_test(NAME cli_export_test SOURCES integration/cli_export_test.c LIBS tb_consumer
             LABELS integration)
add_dependencies(cli_export_test tracebpf_cli)
