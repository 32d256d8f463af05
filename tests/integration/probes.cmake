# Kernel producer tests against the real kernel (root, BTF, tracefs): they
# load BPF programs and use ftrace instances, so never two at once.
tb_unit_test(NAME probes_bpf_test SOURCES integration/probes_bpf_test.c
             LIBS tb_probes_core LABELS integration TIMEOUT 120)
set_tests_properties(probes_bpf_test PROPERTIES RESOURCE_LOCK kernel)

tb_unit_test(NAME probes_ftrace_test SOURCES integration/probes_ftrace_test.c
             LIBS tb_probes_core LABELS integration TIMEOUT 60)
set_tests_properties(probes_ftrace_test PROPERTIES RESOURCE_LOCK kernel)

# traced-bpf-probes end to end: the real daemon and the real producer binary,
# a session recorded over the consumer socket, the trace decoded: workload
# events, one sequence for the ftrace data, no loss, cleanup afterwards.
if(TARGET traced-bpf AND TARGET traced-bpf-probes)
  tb_unit_test(NAME probes_e2e_test SOURCES integration/probes_e2e_test.c
               LIBS tb_common LABELS integration TIMEOUT 120)
  add_dependencies(probes_e2e_test traced-bpf traced-bpf-probes)
  set_tests_properties(probes_e2e_test PROPERTIES RESOURCE_LOCK kernel)
endif()

# The in-kernel filters end to end: tids_to_trace (children followed), comm
# and cgroup through the real daemon and traced-bpf-probes; an unrelated
# process must leave no event.
if(TARGET traced-bpf AND TARGET traced-bpf-probes)
  tb_unit_test(NAME probes_filter_test SOURCES integration/probes_filter_test.c
               LIBS tb_probes_producer LABELS integration TIMEOUT 120)
  add_dependencies(probes_filter_test traced-bpf traced-bpf-probes)
  set_tests_properties(probes_filter_test PROPERTIES RESOURCE_LOCK kernel)
endif()

# linux.process_stats with linux.ftrace end to end: the first process-tree
# scan precedes the first kernel event, children forked during the start
# are all named, the cgroup v2 path is in every process entry and in the
# JSON export's process labels.
if(TARGET traced-bpf AND TARGET traced-bpf-probes AND TARGET tracebpf_cli)
  tb_unit_test(NAME probes_proc_test SOURCES integration/probes_proc_test.c
               LIBS tb_common LABELS integration TIMEOUT 120)
  add_dependencies(probes_proc_test traced-bpf traced-bpf-probes tracebpf_cli)
  set_tests_properties(probes_proc_test PROPERTIES RESOURCE_LOCK kernel)
endif()
