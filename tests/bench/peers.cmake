# Peer-tool benchmark helpers (scripts/bench.sh drives them; ctest does not
# run them: their numbers depend on the machine and on what else runs).
#   tb_bench_count  independent in-kernel counter of the sched tracepoints and
#                   workload launcher (BPF, so only with TB_BUILD_BPF)
#   tb_bench_user   per-event cost of clock_gettime and trace_marker writes;
#                   bench.sh rebuilds it with the LTTng-UST provider
add_executable(tb_bench_user ${TB_TEST_DIR}/peers/userspace_bench.c)
target_link_libraries(tb_bench_user PRIVATE Threads::Threads)

if(TB_BUILD_BPF)
  pkg_check_modules(LIBBPF REQUIRED IMPORTED_TARGET libbpf)
  tb_bpf_object(NAME tb_bench_count SOURCE bench/peers/count.bpf.c
                VMLINUX_DIR ${CMAKE_BINARY_DIR}/bpf/vmlinux
                DEPENDS ${TB_TEST_DIR}/peers/count.h)
  add_executable(tb_bench_count ${TB_TEST_DIR}/peers/count.c)
  target_link_libraries(tb_bench_count PRIVATE tb_bench_count_skel)
endif()
