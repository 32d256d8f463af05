# libtracebpf against the real traced-bpf daemon on private sockets.
# (the extra argument shows up in the process descriptor's cmdline)
tb_unit_test(NAME lib_service_test SOURCES integration/lib_service_test.c
             LIBS tracebpf_static LABELS integration TIMEOUT 180 ARGS "two words" x)
if(TARGET traced-bpf)
  add_dependencies(lib_service_test traced-bpf)
endif()
# The demo, unmodified, recording standalone through TRACEBPF_OUTPUT.
tb_unit_test(NAME lib_demo_test SOURCES integration/lib_demo_test.c
             LIBS tracebpf_static LABELS integration TIMEOUT 120)
add_dependencies(lib_demo_test tracebpf_demo)
# No event lost at a paced rate with the default shared memory.
tb_unit_test(NAME lib_rate_test SOURCES integration/lib_rate_test.c integration/lib_rate_util.c
             LIBS tracebpf_static LABELS integration TIMEOUT 180)
if(TARGET traced-bpf)
  add_dependencies(lib_rate_test traced-bpf)
endif()
