# Whole-system checks: the build-tree daemon starts its own kernel producer
# on private sockets, and the built tracebpf records, lists, inspects and
# exports against it, as a user would. Root, BTF and tracefs (else they skip).
if(TARGET traced-bpf AND TARGET traced-bpf-probes AND TARGET tracebpf_cli)
  tb_unit_test(NAME system_record_test SOURCES integration/system_record_test.c
               LIBS tb_consumer LABELS integration TIMEOUT 120)
  add_dependencies(system_record_test traced-bpf traced-bpf-probes tracebpf_cli)
  set_tests_properties(system_record_test PROPERTIES RESOURCE_LOCK kernel)
endif()

# The Perfetto UI's CPU-scheduling record config through tracebpf record.
if(TARGET traced-bpf AND TARGET traced-bpf-probes AND TARGET tracebpf_cli)
  tb_unit_test(NAME probes_ui_config_test SOURCES integration/probes_ui_config_test.c
               LIBS tb_consumer LABELS integration TIMEOUT 120)
  add_dependencies(probes_ui_config_test traced-bpf traced-bpf-probes tracebpf_cli)
  set_tests_properties(probes_ui_config_test PROPERTIES RESOURCE_LOCK kernel)
endif()
