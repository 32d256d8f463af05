# tracebpf CLI (consumer/): fuzz targets for the parsers of user input.
tb_fuzz_target(NAME cli_textproto_fuzz SOURCES fuzz/cli_textproto_fuzz.c LIBS tb_consumer)
