# tracebpf record / stats / ls: the built binary against a real embedded
# service (record) and a real daemon from the build tree (ls, stats).
tb_unit_test(NAME cli_record_test SOURCES integration/cli_record_test.c LIBS tb_consumer
             LABELS integration TIMEOUT 180)
add_dependencies(cli_record_test tracebpf_cli traced-bpf)
if(TARGET traced-bpf-probes)
  add_dependencies(cli_record_test traced-bpf-probes)
endif()
set_tests_properties(cli_record_test PROPERTIES RESOURCE_LOCK kernel)
