# Kernel producer unit tests (no kernel state changed; they only read it).
tb_unit_test(NAME probes_check_test SOURCES unit/probes_check_test.c LIBS tb_probes_core)
tb_unit_test(NAME probes_bundle_test SOURCES unit/probes_bundle_test.c LIBS tb_probes_core)
tb_unit_test(NAME probes_sched_state_test SOURCES unit/probes_sched_state_test.c LIBS tb_probes_core)
