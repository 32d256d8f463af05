# The kernel producer under load (issue #5): typed system-wide sched events
# while two threads ping-pong; the trace's events, the reported losses and
# the in-kernel totals must add up exactly, and nothing is lost at this rate.
if(TARGET traced-bpf AND TARGET traced-bpf-probes)
  tb_unit_test(NAME probes_load_test SOURCES integration/probes_load_test.c
               LIBS tb_common LABELS integration TIMEOUT 180)
  add_dependencies(probes_load_test traced-bpf traced-bpf-probes)
  set_tests_properties(probes_load_test PROPERTIES RESOURCE_LOCK kernel)
endif()
