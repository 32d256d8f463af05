# libtracebpf benchmark: a plain executable, built but not run by ctest.
#   build/tests/lib_bench [iterations-per-thread]
add_executable(lib_bench ${TB_TEST_DIR}/lib_bench.c)
target_link_libraries(lib_bench PRIVATE tracebpf_static)
# libtracebpf through a private traced-bpf at a paced rate (loss and cost).
#   build/tests/lib_service_bench [-r events/s] [-d s] [-k kind] [-t 1,2,4]
add_executable(lib_service_bench ${TB_TEST_DIR}/lib_service_bench.c
               ${TB_TEST_DIR}/../integration/lib_rate_util.c)
target_link_libraries(lib_service_bench PRIVATE tracebpf_static Threads::Threads)
if(TARGET traced-bpf)
  add_dependencies(lib_service_bench traced-bpf)
endif()
