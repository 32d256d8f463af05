# Writer benchmark: a plain executable, built but not run by ctest.
#   build/tests/writer_bench [packets]
add_executable(writer_bench ${TB_TEST_DIR}/writer_bench.c)
target_link_libraries(writer_bench PRIVATE tb_common)
