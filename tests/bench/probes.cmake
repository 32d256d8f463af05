# Kernel producer benchmark: a plain executable, built but not run by ctest
# (root, real kernel, machine-dependent numbers). Run a Release build:
#   build/tests/probes_bench [round_trips] [repeats]
add_executable(probes_bench ${TB_TEST_DIR}/probes_bench.c)
target_link_libraries(probes_bench PRIVATE tb_probes_core)
