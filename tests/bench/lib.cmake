# libtracebpf benchmark: a plain executable, built but not run by ctest.
#   build/tests/lib_bench [iterations-per-thread]
add_executable(lib_bench ${TB_TEST_DIR}/lib_bench.c)
target_link_libraries(lib_bench PRIVATE tracebpf_static)
