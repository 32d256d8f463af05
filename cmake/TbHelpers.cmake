# Helpers shared by every component's CMakeLists.txt. Test registration goes
# through these so each area can keep its own fragment file
# (tests/<kind>/<area>.cmake) without editing a shared list.

# tb_unit_test(NAME n SOURCES a.c b.c LIBS x y [LABELS l] [TIMEOUT s])
# Builds a cmocka test executable and registers it with ctest.
function(tb_unit_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS;ARGS" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} PkgConfig::CMOCKA Threads::Threads)
  add_test(NAME ${T_NAME} COMMAND ${T_NAME} ${T_ARGS})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  if(NOT T_LABELS)
    set(T_LABELS unit)
  endif()
  set_tests_properties(${T_NAME} PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS "${T_LABELS}"
                       ENVIRONMENT "TB_TEST_BUILD_DIR=${CMAKE_BINARY_DIR}")
endfunction()

# tb_fuzz_target(NAME n SOURCES f.c LIBS x [SECONDS s])
# A libFuzzer target (only with TB_FUZZ=ON) plus a short ctest run of it.
function(tb_fuzz_target)
  cmake_parse_arguments(F "" "NAME;SECONDS" "SOURCES;LIBS" ${ARGN})
  if(NOT TB_FUZZ)
    return()
  endif()
  add_executable(${F_NAME} ${F_SOURCES})
  target_compile_options(${F_NAME} PRIVATE -fsanitize=fuzzer)
  target_link_options(${F_NAME} PRIVATE -fsanitize=fuzzer)
  target_link_libraries(${F_NAME} PRIVATE ${F_LIBS})
  if(NOT F_SECONDS)
    set(F_SECONDS 10)
  endif()
  set(corpus ${CMAKE_BINARY_DIR}/fuzz-corpus/${F_NAME})
  file(MAKE_DIRECTORY ${corpus})
  set(dirs ${corpus})
  if(EXISTS ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/${F_NAME})
    list(APPEND dirs ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/${F_NAME})
  endif()
  add_test(NAME ${F_NAME}_short
           COMMAND ${F_NAME} -max_total_time=${F_SECONDS} -rss_limit_mb=2048 ${dirs})
  set_tests_properties(${F_NAME}_short PROPERTIES TIMEOUT 120 LABELS fuzz)
endfunction()
