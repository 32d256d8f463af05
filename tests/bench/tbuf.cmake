# Central trace buffer benchmark: a plain executable, built but not run by
# ctest (numbers depend on the machine). Run a Release build:
#   build/tests/trace_buffer_bench [total_mib]
add_executable(trace_buffer_bench ${TB_TEST_DIR}/trace_buffer_bench.c
               ${CMAKE_SOURCE_DIR}/service/trace_buffer.c
               ${CMAKE_SOURCE_DIR}/service/trace_buffer_index.c
               ${CMAKE_SOURCE_DIR}/service/trace_buffer_read.c)
target_link_libraries(trace_buffer_bench PRIVATE tb_common)
